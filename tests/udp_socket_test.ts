/**
 * lib/net/udp_socket.ts on real loopback sockets: binding (IPv4, IPv6, dual-stack), exact
 * bytes and peers, 20,000 datagrams in paced bursts, segmentation offload in both directions,
 * counters, back-pressure, errors, and a prompt close. node:dgram serves as an independent
 * peer where one is useful.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { type Libc, libc, LINUX } from "../ffi/libc.ts";
import {
  decodeSockaddr,
  encodeSockaddr,
  sameSockaddr,
  type SocketAddress,
} from "../lib/net/address.ts";
import { MAX_DATAGRAM, type ReceivedBatch, UdpSocket } from "../lib/net/udp_socket.ts";
import { waitFor } from "./support/bytes.ts";

const LOOPBACK4 = { hostname: "127.0.0.1", port: 0 };
const LOOPBACK6 = { hostname: "::1", port: 0 };

// ---------------------------------------------------------------------------------------------
// Datagrams whose every byte is checkable: seq (u32) | length (u32) | xorshift bytes | FNV-1a.

function fnv1a(bytes: Uint8Array, length: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return hash >>> 0;
}

/** Writes datagram `seq` of `length` (>= 12) bytes into `out`. */
function fillDatagram(out: Uint8Array, seq: number, length: number): void {
  const view = new DataView(out.buffer, out.byteOffset, length);
  view.setUint32(0, seq);
  view.setUint32(4, length);
  let x = (Math.imul(seq, 0x9e3779b1) ^ 0x5bd1e995) >>> 0 || 1;
  for (let i = 8; i < length - 4; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  view.setUint32(length - 4, fnv1a(out, length - 4));
}

function datagram(seq: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  fillDatagram(out, seq, length);
  return out;
}

const scratch = new Uint8Array(65_536);

/** Checks a received datagram; returns its seq. */
function checkDatagram(bytes: Uint8Array): number {
  assert.ok(bytes.length >= 12, `datagram of ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const seq = view.getUint32(0);
  assert.equal(view.getUint32(4), bytes.length, `length field of datagram ${seq}`);
  assert.equal(view.getUint32(bytes.length - 4), fnv1a(bytes, bytes.length - 4), `checksum ${seq}`);
  fillDatagram(scratch, seq, bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== scratch[i]) assert.fail(`datagram ${seq} differs at byte ${i}`);
  }
  return seq;
}

// ---------------------------------------------------------------------------------------------

interface Received {
  bytes: Uint8Array;
  peer: SocketAddress;
  peerBytes: Uint8Array;
}

/** Starts `socket`'s receive loop, keeping a copy of every datagram and counting batches. */
function collect(socket: UdpSocket) {
  const datagrams: Received[] = [];
  const state = { datagrams, batches: 0, loop: undefined as unknown as Promise<void> };
  state.loop = socket.receive((batch: ReceivedBatch) => {
    state.batches++;
    for (let i = 0; i < batch.count; i++) {
      const buffer = batch.buffers[batch.buffer[i]];
      const peerBytes = batch.peers[batch.buffer[i]];
      datagrams.push({
        bytes: buffer.slice(batch.offsets[i], batch.offsets[i] + batch.lengths[i]),
        peer: decodeSockaddr(peerBytes),
        peerBytes: peerBytes.slice(0, peerBytes[0] === LINUX.AF_INET ? 16 : 28),
      });
    }
  });
  return state;
}

/** libc's symbol table, writable, so a test can stand in for one call (restored after). */
function writableLibc(): { -readonly [K in keyof Libc]: Libc[K] } {
  return libc();
}

function openFds(): number {
  let count = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
  return count;
}

function nodeSocket(type: "udp4" | "udp6", address: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket(type);
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, address, () => resolve(socket));
  });
}

function nodeSend(socket: dgram.Socket, data: Uint8Array, port: number, host: string) {
  return new Promise<void>((resolve, reject) => {
    socket.send(data, port, host, (error) => error ? reject(error) : resolve());
  });
}

function nodeClose(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

// ---------------------------------------------------------------------------------------------

Deno.test("bind to port 0 picks a port; localAddress, localSockaddr and family agree", async () => {
  const cases: [SocketAddress, 4 | 6, number][] = [
    [LOOPBACK4, 4, 16],
    [{ hostname: "0.0.0.0", port: 0 }, 4, 16],
    [LOOPBACK6, 6, 28],
    [{ hostname: "::", port: 0 }, 6, 28],
  ];
  for (const [address, family, size] of cases) {
    const socket = UdpSocket.bind(address);
    try {
      assert.equal(socket.family, family);
      assert.equal(socket.localAddress.hostname, address.hostname);
      assert.ok(socket.localAddress.port > 0 && socket.localAddress.port < 65536);
      assert.equal(socket.localSockaddr.length, size);
      assert.deepEqual(decodeSockaddr(socket.localSockaddr), socket.localAddress);
      assert.deepEqual(
        [...socket.localSockaddr],
        [...encodeSockaddr(socket.localAddress, family)],
      );
      assert.equal(socket.closed, false);
      assert.equal(socket.queued, 0);
      assert.deepEqual(
        { ...socket.stats, gro: false },
        {
          packetsReceived: 0,
          packetsSent: 0,
          receiveCalls: 0,
          sendCalls: 0,
          truncatedDropped: 0,
          sendErrors: 0,
          receiveErrors: 0,
          gso: true,
          gro: false,
        },
      );
    } finally {
      await socket.close();
    }
    assert.equal(socket.closed, true);
  }
  const a = UdpSocket.bind(LOOPBACK4), b = UdpSocket.bind(LOOPBACK4);
  assert.notEqual(a.localAddress.port, b.localAddress.port);
  await a.close();
  await b.close();
});

Deno.test("IPv4: exact bytes and peers both ways; nothing leaves before flush()", async () => {
  const a = UdpSocket.bind(LOOPBACK4), b = UdpSocket.bind(LOOPBACK4);
  const atB = collect(b), atA = collect(a);
  try {
    const toB = a.sockaddrFor(b.localAddress);
    // Strictly growing sizes: no two datagrams can share a segmentation-offload message.
    const sizes = [12, 13, 100, 1200, 1350, 1500, 2000, 2047, MAX_DATAGRAM];
    for (let i = 0; i < sizes.length; i++) assert.equal(a.sendTo(datagram(i, sizes[i]), toB), true);
    assert.equal(a.queued, sizes.length);
    assert.equal(a.stats.packetsSent, 0);
    assert.equal(a.stats.sendCalls, 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(atB.datagrams.length, 0, "queued datagrams wait for flush()");
    a.flush();
    assert.equal(a.queued, 0);
    assert.equal(a.stats.packetsSent, sizes.length);
    assert.equal(a.stats.sendCalls, 1, "one sendmmsg for the whole queue");
    await waitFor(() => atB.datagrams.length === sizes.length, "datagrams at b");
    assert.deepEqual(atB.datagrams.map((d) => d.bytes.length), sizes);
    assert.deepEqual(atB.datagrams.map((d) => checkDatagram(d.bytes)), sizes.map((_, i) => i));
    for (const d of atB.datagrams) {
      assert.deepEqual(d.peer, a.localAddress);
      assert.equal(sameSockaddr(d.peerBytes, b.sockaddrFor(a.localAddress)), true);
    }
    assert.equal(b.stats.packetsReceived, sizes.length);
    assert.equal(b.stats.receiveCalls, atB.batches);
    assert.equal(b.stats.truncatedDropped, 0);
    // Flushing an empty queue makes no call.
    a.flush();
    assert.equal(a.stats.sendCalls, 1);

    // Reply to the peer address exactly as received.
    assert.equal(b.sendTo(datagram(99, 40), atB.datagrams[0].peerBytes), true);
    b.flush();
    await waitFor(() => atA.datagrams.length === 1, "reply at a");
    assert.equal(checkDatagram(atA.datagrams[0].bytes), 99);
    assert.deepEqual(atA.datagrams[0].peer, b.localAddress);
    assert.equal(b.stats.packetsSent, 1);
    assert.equal(a.stats.packetsReceived, 1);
  } finally {
    await a.close();
    await b.close();
  }
  await atA.loop;
  await atB.loop;
});

Deno.test("IPv6 ::1: exact bytes and peers both ways", async () => {
  const a = UdpSocket.bind(LOOPBACK6), b = UdpSocket.bind(LOOPBACK6);
  const atB = collect(b), atA = collect(a);
  try {
    assert.equal(a.family, 6);
    const toB = a.sockaddrFor(b.localAddress);
    assert.equal(toB.length, 28);
    for (let i = 0; i < 100; i++) assert.equal(a.sendTo(datagram(i, 20 + i * 7), toB), true);
    a.flush();
    assert.equal(a.stats.packetsSent, 100);
    await waitFor(() => atB.datagrams.length === 100, "100 datagrams at b");
    assert.deepEqual(
      atB.datagrams.map((d) => checkDatagram(d.bytes)),
      Array.from({ length: 100 }, (_, i) => i),
    );
    for (const d of atB.datagrams) {
      assert.deepEqual(d.peer, { hostname: "::1", port: a.localAddress.port });
      assert.equal(d.peerBytes[0], LINUX.AF_INET6);
    }
    b.sendTo(datagram(7, 64), atB.datagrams[0].peerBytes);
    b.flush();
    await waitFor(() => atA.datagrams.length === 1, "reply at a");
    assert.equal(checkDatagram(atA.datagrams[0].bytes), 7);
    assert.deepEqual(atA.datagrams[0].peer, b.localAddress);
    assert.equal(b.stats.packetsReceived, 100);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("dual-stack ::: IPv4 peers arrive v4-mapped, decode as plain IPv4, and get replies", async () => {
  const server = UdpSocket.bind({ hostname: "::", port: 0 });
  const client = UdpSocket.bind(LOOPBACK4);
  const node = await nodeSocket("udp4", "127.0.0.1");
  const nodeGot: Uint8Array[] = [];
  node.on("message", (message: Uint8Array) => nodeGot.push(new Uint8Array(message)));
  const atServer = collect(server), atClient = collect(client);
  try {
    const port = server.localAddress.port;
    client.sendTo(datagram(1, 300), client.sockaddrFor({ hostname: "127.0.0.1", port }));
    client.flush();
    await nodeSend(node, datagram(2, 301), port, "127.0.0.1");
    await waitFor(() => atServer.datagrams.length === 2, "two datagrams at the dual-stack socket");
    const bySeq = new Map(atServer.datagrams.map((d) => [checkDatagram(d.bytes), d]));
    const fromClient = bySeq.get(1)!, fromNode = bySeq.get(2)!;
    assert.deepEqual(fromClient.peer, { hostname: "127.0.0.1", port: client.localAddress.port });
    assert.deepEqual(fromNode.peer, { hostname: "127.0.0.1", port: node.address().port });
    // On the wire (in the kernel's sockaddr) the peer is ::ffff:127.0.0.1 in a sockaddr_in6.
    assert.equal(fromClient.peerBytes.length, 28);
    assert.equal(fromClient.peerBytes[0], LINUX.AF_INET6);
    assert.deepEqual([...fromClient.peerBytes.subarray(8, 24)], [
      ...new Array(10).fill(0),
      0xff,
      0xff,
      127,
      0,
      0,
      1,
    ]);
    assert.equal(sameSockaddr(fromClient.peerBytes, server.sockaddrFor(fromClient.peer)), true);

    // Replies: to the sockaddr as received, and to one made from the decoded address.
    server.sendTo(datagram(10, 50), fromClient.peerBytes);
    server.sendTo(datagram(11, 51), server.sockaddrFor(fromNode.peer));
    server.flush();
    assert.equal(server.stats.sendErrors, 0);
    await waitFor(() => atClient.datagrams.length === 1 && nodeGot.length === 1, "replies");
    assert.equal(checkDatagram(atClient.datagrams[0].bytes), 10);
    assert.deepEqual(atClient.datagrams[0].peer, { hostname: "127.0.0.1", port });
    assert.equal(checkDatagram(nodeGot[0]), 11);
  } finally {
    await nodeClose(node);
    await server.close();
    await client.close();
  }
});

Deno.test("dual-stack :: also holds the port for IPv4", async () => {
  const v4 = UdpSocket.bind(LOOPBACK4);
  try {
    assert.throws(
      () => UdpSocket.bind({ hostname: "::", port: v4.localAddress.port }),
      /Address already in use/,
    );
  } finally {
    await v4.close();
  }
});

/** Sends 20,000 distinct datagrams in paced bursts and checks every byte and counter. */
async function twentyThousand(gso: boolean): Promise<void> {
  const N = 20_000, BURST = 1000;
  const sender = UdpSocket.bind(LOOPBACK4), receiver = UdpSocket.bind(LOOPBACK4);
  // The socket's own switch, as flush() sets it when the kernel refuses offload.
  sender.stats.gso = gso;
  const seen = new Uint8Array(N);
  let received = 0, batches = 0, maxBatch = 0;
  const expectedPeer = receiver.sockaddrFor(sender.localAddress);
  const loop = receiver.receive((batch) => {
    batches++;
    maxBatch = Math.max(maxBatch, batch.count);
    for (let i = 0; i < batch.count; i++) {
      const offset = batch.offsets[i], length = batch.lengths[i];
      const bytes = batch.buffers[batch.buffer[i]].subarray(offset, offset + length);
      const seq = checkDatagram(bytes);
      assert.ok(seq < N, `seq ${seq}`);
      assert.equal(length, lengthOf(seq), `length of ${seq}`);
      assert.equal(seen[seq], 0, `datagram ${seq} delivered twice`);
      seen[seq] = 1;
      assert.ok(sameSockaddr(batch.peers[batch.buffer[i]], expectedPeer), `peer of ${seq}`);
      received++;
    }
  });
  /** Runs of 16 equal sizes (so segmentation offload has work), sizes 12..1101 bytes. */
  function lengthOf(seq: number): number {
    return 12 + ((seq >> 4) % 100) * 11;
  }
  try {
    const peer = sender.sockaddrFor(receiver.localAddress);
    for (let seq = 0; seq < N;) {
      const end = Math.min(N, seq + BURST);
      const zeroCopy = (seq / BURST) % 2 === 1;
      for (; seq < end; seq++) {
        if (zeroCopy) {
          const room = sender.reserve();
          assert.ok(room, "room to send");
          assert.equal(room.length, MAX_DATAGRAM);
          fillDatagram(room, seq, lengthOf(seq));
          sender.commit(lengthOf(seq), peer);
        } else {
          assert.equal(sender.sendTo(datagram(seq, lengthOf(seq)), peer), true);
        }
      }
      sender.flush();
      assert.equal(sender.queued, 0);
      await waitFor(() => received === seq, `receiver to catch up to ${seq}`);
    }
    assert.equal(received, N);
    assert.equal(seen.reduce((sum, v) => sum + v, 0), N);
    const s = sender.stats, r = receiver.stats;
    assert.equal(s.packetsSent, N);
    assert.equal(s.sendErrors, 0);
    assert.equal(s.gso, gso);
    // At least one sendmmsg per burst; at most one per 64 messages (and with GSO, far fewer).
    assert.ok(s.sendCalls >= N / BURST, `sendCalls ${s.sendCalls}`);
    assert.ok(s.sendCalls <= (N / BURST) * Math.ceil(BURST / 64), `sendCalls ${s.sendCalls}`);
    if (gso) assert.ok(s.sendCalls <= (2 * N) / BURST, `sendCalls ${s.sendCalls} with GSO`);
    assert.equal(r.packetsReceived, N);
    assert.equal(r.truncatedDropped, 0);
    assert.equal(r.receiveCalls, batches);
    assert.ok(r.receiveCalls < N / 4, `receiveCalls ${r.receiveCalls}: batched`);
    assert.ok(maxBatch > 1);
    assert.equal(r.packetsSent, 0);
    assert.equal(s.packetsReceived, 0);
  } finally {
    await sender.close();
    await receiver.close();
  }
  await loop;
}

Deno.test("20,000 distinct datagrams in paced bursts all arrive intact; counters agree", () =>
  twentyThousand(true));

Deno.test("20,000 datagrams again with segmentation offload off", () => twentyThousand(false));

Deno.test("segmentation offload: equal-size datagrams to one peer, one call, split on arrival", async () => {
  const a = UdpSocket.bind(LOOPBACK4), b = UdpSocket.bind(LOOPBACK4);
  const node = await nodeSocket("udp4", "127.0.0.1");
  const nodeGot: Uint8Array[] = [];
  node.on("message", (message: Uint8Array) => nodeGot.push(new Uint8Array(message)));
  const atB = collect(b);
  try {
    // 10 x 1000 bytes and a shorter last one: one GSO message per peer.
    const sizes = [...new Array(10).fill(1000), 500];
    for (const [seq, size] of sizes.entries()) {
      a.sendTo(datagram(seq, size), a.sockaddrFor(b.localAddress));
    }
    a.flush();
    assert.equal(a.stats.sendCalls, 1);
    assert.equal(a.stats.packetsSent, 11);
    await waitFor(() => atB.datagrams.length === 11, "11 datagrams at b");
    assert.deepEqual(atB.datagrams.map((d) => d.bytes.length), sizes);
    assert.deepEqual(atB.datagrams.map((d) => checkDatagram(d.bytes)), sizes.map((_, i) => i));
    assert.equal(b.stats.packetsReceived, 11);

    // To a receiver without GRO the kernel splits them: node sees 11 separate datagrams.
    const toNode = a.sockaddrFor({ hostname: "127.0.0.1", port: node.address().port });
    for (const [seq, size] of sizes.entries()) a.sendTo(datagram(100 + seq, size), toNode);
    // A datagram of another size after the short one starts a new message.
    a.sendTo(datagram(200, 1000), toNode);
    a.flush();
    assert.equal(a.stats.packetsSent, 23);
    await waitFor(() => nodeGot.length === 12, "12 datagrams at node");
    assert.deepEqual(nodeGot.map((d) => d.length), [...sizes, 1000]);
    assert.deepEqual(nodeGot.map(checkDatagram), [...sizes.map((_, i) => 100 + i), 200]);

    // Interleaved peers never share a message.
    const toB = a.sockaddrFor(b.localAddress);
    for (let i = 0; i < 6; i++) a.sendTo(datagram(300 + i, 700), i % 2 ? toNode : toB);
    a.flush();
    await waitFor(() => atB.datagrams.length === 14 && nodeGot.length === 15, "interleaved");
    assert.deepEqual(atB.datagrams.slice(11).map((d) => checkDatagram(d.bytes)), [300, 302, 304]);
    assert.deepEqual(nodeGot.slice(12).map(checkDatagram), [301, 303, 305]);
    assert.equal(a.stats.sendErrors, 0);
  } finally {
    await nodeClose(node);
    await a.close();
    await b.close();
  }
});

Deno.test("largest datagrams: MAX_DATAGRAM via sendTo, and 65,507 bytes from node, intact", async () => {
  assert.equal(MAX_DATAGRAM, 2048);
  const a = UdpSocket.bind(LOOPBACK4), b = UdpSocket.bind(LOOPBACK4);
  const node = await nodeSocket("udp4", "127.0.0.1");
  const atB = collect(b);
  try {
    assert.equal(a.sendTo(datagram(1, MAX_DATAGRAM), a.sockaddrFor(b.localAddress)), true);
    a.flush();
    await nodeSend(node, datagram(2, 65_507), b.localAddress.port, "127.0.0.1");
    await waitFor(() => atB.datagrams.length === 2, "two datagrams");
    const lengths = atB.datagrams.map((d) => d.bytes.length).sort((x, y) => x - y);
    assert.deepEqual(lengths, [MAX_DATAGRAM, 65_507]);
    for (const d of atB.datagrams) checkDatagram(d.bytes);
    assert.equal(b.stats.truncatedDropped, 0);
    assert.equal(b.stats.packetsReceived, 2);
  } finally {
    await nodeClose(node);
    await a.close();
    await b.close();
  }
});

Deno.test("sendTo: a datagram over MAX_DATAGRAM is a RangeError and queues nothing", async () => {
  const a = UdpSocket.bind(LOOPBACK4), b = UdpSocket.bind(LOOPBACK4);
  const atB = collect(b);
  try {
    const toB = a.sockaddrFor(b.localAddress);
    assert.throws(
      () => a.sendTo(new Uint8Array(MAX_DATAGRAM + 1), toB),
      new RangeError(`datagram of ${MAX_DATAGRAM + 1} bytes exceeds ${MAX_DATAGRAM}`),
    );
    assert.throws(() => a.sendTo(new Uint8Array(65_000), toB), RangeError);
    assert.equal(a.queued, 0);
    assert.equal(a.sendTo(datagram(5, 33), toB), true);
    assert.equal(a.queued, 1);
    a.flush();
    await waitFor(() => atB.datagrams.length === 1, "the one valid datagram");
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(atB.datagrams.length, 1);
    assert.equal(checkDatagram(atB.datagrams[0].bytes), 5);
    assert.equal(a.stats.packetsSent, 1);
    assert.equal(a.stats.sendErrors, 0);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("empty datagrams: each sendTo() that returned true leaves as a datagram", async () => {
  const a = UdpSocket.bind(LOOPBACK4);
  const node = await nodeSocket("udp4", "127.0.0.1");
  const nodeGot: number[] = [];
  node.on("message", (message: Uint8Array) => nodeGot.push(message.length));
  try {
    const toNode = a.sockaddrFor({ hostname: "127.0.0.1", port: node.address().port });
    for (let i = 0; i < 3; i++) assert.equal(a.sendTo(new Uint8Array(0), toNode), true);
    a.sendTo(datagram(1, 20), toNode);
    a.flush();
    assert.equal(a.stats.packetsSent, 4);
    await waitFor(() => nodeGot.includes(20), "the last datagram at node");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(nodeGot, [0, 0, 0, 20]);
  } finally {
    await nodeClose(node);
    await a.close();
  }
});

Deno.test("empty datagrams: an empty datagram received is delivered and counted", async () => {
  const b = UdpSocket.bind(LOOPBACK4);
  const node = await nodeSocket("udp4", "127.0.0.1");
  const atB = collect(b);
  try {
    await nodeSend(node, new Uint8Array(0), b.localAddress.port, "127.0.0.1");
    await nodeSend(node, datagram(1, 20), b.localAddress.port, "127.0.0.1");
    await waitFor(() => atB.datagrams.some((d) => d.bytes.length === 20), "the 20-byte datagram");
    assert.deepEqual(atB.datagrams.map((d) => d.bytes.length), [0, 20]);
    assert.equal(b.stats.packetsReceived, 2);
  } finally {
    await nodeClose(node);
    await b.close();
  }
});

Deno.test("a datagram the kernel refuses (port 0) is counted and dropped; the rest go out", async () => {
  const a = UdpSocket.bind(LOOPBACK4), b = UdpSocket.bind(LOOPBACK4);
  const atB = collect(b);
  try {
    const toB = a.sockaddrFor(b.localAddress);
    const portZero = a.sockaddrFor({ hostname: "127.0.0.1", port: 0 });
    a.sendTo(datagram(1, 100), toB);
    a.sendTo(datagram(2, 90), portZero);
    a.sendTo(datagram(3, 80), toB);
    a.flush();
    assert.equal(a.queued, 0);
    assert.equal(a.stats.sendErrors, 1);
    assert.equal(a.stats.packetsSent, 2);
    await waitFor(() => atB.datagrams.length === 2, "two datagrams");
    assert.deepEqual(atB.datagrams.map((d) => checkDatagram(d.bytes)), [1, 3]);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("a bad destination does not turn segmentation offload off for the socket", async () => {
  // Several equal-size datagrams to a peer with port 0 (which anyone can spoof as a source)
  // fail with EINVAL, as GSO-unsupported paths do; only EIO means the device can't do GSO.
  const a = UdpSocket.bind(LOOPBACK4), b = UdpSocket.bind(LOOPBACK4);
  const atB = collect(b);
  try {
    const portZero = a.sockaddrFor({ hostname: "127.0.0.1", port: 0 });
    for (let i = 0; i < 3; i++) a.sendTo(datagram(i, 200), portZero);
    a.flush();
    assert.equal(a.stats.sendErrors, 3);
    assert.equal(a.stats.packetsSent, 0);
    assert.equal(a.stats.gso, true, "GSO still on after an EINVAL for a bad destination");
    for (let i = 0; i < 3; i++) a.sendTo(datagram(10 + i, 200), a.sockaddrFor(b.localAddress));
    a.flush();
    await waitFor(() => atB.datagrams.length === 3, "three datagrams");
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("back-pressure: sendTo returns false while the kernel says EAGAIN; whenWritable resumes", async () => {
  // Loopback UDP never fills a send buffer (the skb is orphaned at once), so EAGAIN is made
  // by wrapping libc's sendmmsg/errno for this test only; poll() stays real.
  const c = writableLibc();
  const realSendmmsg = c.sendmmsg, realErrno = c.__errno_location;
  const eagain = new Int32Array([LINUX.EAGAIN]);
  let blocked = true;
  let refusedCalls = 0;
  c.sendmmsg = ((...args: Parameters<typeof realSendmmsg>) => {
    if (!blocked) return realSendmmsg(...args);
    refusedCalls++;
    return -1;
  }) as typeof realSendmmsg;
  c.__errno_location =
    (() => blocked ? Deno.UnsafePointer.of(eagain) : realErrno()) as typeof realErrno;
  const a = UdpSocket.bind(LOOPBACK4), b = UdpSocket.bind(LOOPBACK4);
  const atB = collect(b);
  try {
    const toB = a.sockaddrFor(b.localAddress);
    let accepted = 0;
    while (accepted < 100_000 && a.sendTo(datagram(accepted, 200), toB)) accepted++;
    assert.ok(accepted >= 64 && accepted < 100_000, `accepted ${accepted} before the queue filled`);
    assert.equal(a.queued, accepted);
    assert.equal(a.stats.packetsSent, 0);
    assert.equal(a.stats.sendCalls, 0);
    assert.equal(a.stats.sendErrors, 0);
    assert.ok(refusedCalls >= 1);
    assert.equal(a.sendTo(datagram(0, 200), toB), false, "still full");
    assert.equal(a.reserve(), null);
    let drainedWakeups = 0;
    a.whenWritable(() => {
      if (a.queued === 0) drainedWakeups++;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(a.queued, accepted, "nothing leaves while blocked");
    blocked = false;
    await waitFor(() => drainedWakeups >= 1, "whenWritable after the queue drained");
    assert.equal(a.queued, 0);
    assert.equal(a.stats.packetsSent, accepted);
    assert.equal(a.stats.sendErrors, 0);
    await waitFor(() => atB.datagrams.length === accepted, `${accepted} datagrams at b`);
    assert.deepEqual(
      atB.datagrams.map((d) => checkDatagram(d.bytes)),
      Array.from({ length: accepted }, (_, i) => i),
    );
    assert.equal(a.sendTo(datagram(accepted, 200), toB), true, "room again");
  } finally {
    c.sendmmsg = realSendmmsg;
    c.__errno_location = realErrno;
    await a.close();
    await b.close();
  }
});

Deno.test("close() while waiting for writability resolves promptly", async () => {
  const c = writableLibc();
  const realSendmmsg = c.sendmmsg, realErrno = c.__errno_location;
  const eagain = new Int32Array([LINUX.EAGAIN]);
  c.sendmmsg = (() => -1) as unknown as typeof realSendmmsg;
  c.__errno_location = (() => Deno.UnsafePointer.of(eagain)) as typeof realErrno;
  const a = UdpSocket.bind(LOOPBACK4);
  let wakeupsAfterClose = 0;
  try {
    a.sendTo(datagram(1, 100), a.sockaddrFor({ hostname: "127.0.0.1", port: 9 }));
    a.flush();
    assert.equal(a.queued, 1);
    const start = performance.now();
    const closing = a.close();
    a.whenWritable(() => wakeupsAfterClose++);
    await closing;
    assert.ok(performance.now() - start < 1000, `close took ${performance.now() - start} ms`);
  } finally {
    c.sendmmsg = realSendmmsg;
    c.__errno_location = realErrno;
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(wakeupsAfterClose, 0);
  assert.equal(a.closed, true);
});

Deno.test("close() while the receive loop waits resolves in < 1 s, settles receive(), frees fds", async () => {
  // Warm up whatever Deno opens lazily (FFI worker threads, ...), then count.
  const warm = UdpSocket.bind(LOOPBACK4);
  const warmLoop = warm.receive(() => {});
  await new Promise((resolve) => setTimeout(resolve, 10));
  await warm.close();
  await warmLoop;
  const baseline = openFds();

  for (const address of [LOOPBACK4, LOOPBACK6, { hostname: "::", port: 0 }]) {
    const socket = UdpSocket.bind(address);
    assert.equal(openFds(), baseline + 2, "a socket and its eventfd");
    let settled = false;
    const loop = socket.receive(() => {}).then(() => settled = true);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the loop is now in poll()
    assert.equal(settled, false);
    const start = performance.now();
    await socket.close();
    const elapsed = performance.now() - start;
    assert.ok(elapsed < 1000, `close took ${elapsed} ms`);
    await Promise.race([
      loop,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("receive() never settled")), 1000)
      ),
    ]);
    assert.equal(settled, true);
    assert.equal(socket.closed, true);
    assert.equal(openFds(), baseline, "both fds closed");
    await socket.close(); // a second close is a no-op
  }

  // Closing a socket that never received.
  const idle = UdpSocket.bind(LOOPBACK4);
  await idle.close();
  assert.equal(openFds(), baseline);
});

Deno.test("receive() twice throws", async () => {
  const socket = UdpSocket.bind(LOOPBACK4);
  const loop = socket.receive(() => {});
  try {
    assert.throws(() => socket.receive(() => {}), new Error("UdpSocket.receive() called twice"));
  } finally {
    await socket.close();
  }
  await loop;
});

Deno.test("binding a port in use fails naming bind and the address, and leaks no fd", async () => {
  const taken = UdpSocket.bind(LOOPBACK4);
  const port = taken.localAddress.port;
  const baseline = openFds();
  try {
    assert.throws(
      () => UdpSocket.bind({ hostname: "127.0.0.1", port }),
      (error: Error & { errno?: number }) => {
        assert.equal(
          error.message,
          `bind(127.0.0.1:${port}) failed: Address already in use (errno 98)`,
        );
        assert.equal(error.errno, 98);
        return true;
      },
    );
    assert.equal(openFds(), baseline);
    // An address this host does not have.
    assert.throws(
      () => UdpSocket.bind({ hostname: "192.0.2.1", port: 0 }),
      /^Error: bind\(192\.0\.2\.1:0\) failed: Cannot assign requested address \(errno 99\)$/,
    );
    assert.equal(openFds(), baseline);
  } finally {
    await taken.close();
  }
});

Deno.test("binding an IPv6 port in use names the address as [::1]:PORT", async () => {
  const taken = UdpSocket.bind(LOOPBACK6);
  const port = taken.localAddress.port;
  try {
    assert.throws(
      () => UdpSocket.bind({ hostname: "::1", port }),
      (error: Error) => {
        assert.match(error.message, /^bind\(.*\) failed: Address already in use \(errno 98\)$/);
        // "::1:PORT" reads as an IPv6 address; the project's own formatAddress brackets it.
        assert.ok(error.message.includes(`[::1]:${port}`), error.message);
        return true;
      },
    );
  } finally {
    await taken.close();
  }
});

Deno.test("sockaddrFor: IPv4 sockets refuse IPv6 peers; IPv6 sockets map IPv4 peers", async () => {
  const v4 = UdpSocket.bind(LOOPBACK4), v6 = UdpSocket.bind({ hostname: "::", port: 0 });
  try {
    assert.throws(
      () => v4.sockaddrFor({ hostname: "::1", port: 443 }),
      /cannot reach IPv6 address ::1 from an IPv4 socket/,
    );
    assert.equal(v4.sockaddrFor({ hostname: "10.0.0.1", port: 443 }).length, 16);
    const mapped = v6.sockaddrFor({ hostname: "10.0.0.1", port: 443 });
    assert.equal(mapped.length, 28);
    assert.deepEqual(decodeSockaddr(mapped), { hostname: "10.0.0.1", port: 443 });
  } finally {
    await v4.close();
    await v6.close();
  }
});
