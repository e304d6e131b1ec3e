/**
 * lib/tcp in process: hand-built segments go into a TcpStack under fake timers and every
 * reply is checked exactly — the handshake and its options, ACKs, reassembly and SACK,
 * retransmission timing and backoff, fast retransmit, zero-window probes, flow control both
 * ways, RSTs for unknown flows and RFC 5961 challenge ACKs, and the closing state machine.
 */
import assert from "node:assert/strict";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, writeUdpPacket } from "../lib/packet/mod.ts";
import { TcpConnectionError } from "../lib/tcp/mod.ts";
import { describe, readBytes, withPeer } from "./support/tcp_peer.ts";

const text = (s: string) => new TextEncoder().encode(s);
const ISN = 5000;

Deno.test("SYN gets a SYN-ACK with our MSS, window scale and SACK-permitted as offered", async () => {
  await withPeer({ mtu: 1500 }, async (peer) => {
    peer.send({
      seq: ISN,
      flags: TCP_SYN,
      window: 64240,
      options: { mss: 1460, windowScale: 7, sackPermitted: true },
    });
    const synAck = peer.takeOne();
    assert.deepEqual(
      { ...synAck, seq: 0, payload: synAck.payload.length },
      {
        src: "10.77.0.2",
        dst: "10.0.0.1",
        srcPort: 80,
        dstPort: 40000,
        seq: 0,
        ack: ISN + 1,
        flags: TCP_SYN | TCP_ACK,
        window: 65535,
        options: { mss: 1460, windowScale: 3, sackPermitted: true }, // 256 KiB needs shift 3
        payload: 0,
      },
    );
    assert.equal(peer.stack.counters.connectionsHalfOpen, 1);
    assert.equal(peer.stack.counters.connectionsAccepted, 0);

    // A SYN without options gets neither window scaling nor SACK.
    peer.send({ seq: 77, flags: TCP_SYN, srcPort: 40001 });
    assert.deepEqual(peer.takeOne().options, { mss: 1460 });
    await peer.run();
  });
  await withPeer({ mtu: 1500 }, async (peer) => {
    peer.send({ seq: ISN, flags: TCP_SYN, options: { mss: 9000 } });
    const synAck = peer.takeOne();
    assert.equal(synAck.options.mss, 1440, "IPv6 MSS is the MTU minus 60");
    assert.equal(synAck.ack, ISN + 1);
    await peer.run();
  }, { family: 6 });
});

Deno.test("handshake hands over the connection; data is ACKed, every second segment at once", async () => {
  await withPeer({ mtu: 1500 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN);
    assert.deepEqual(peer.accepted[0].flow, {
      family: 4,
      src: "10.0.0.1",
      srcPort: 40000,
      dst: "10.77.0.2",
      dstPort: 80,
    });
    assert.equal(connection.state, "ESTABLISHED");
    const counters = peer.stack.counters;
    assert.deepEqual(
      [counters.connectionsAccepted, counters.connectionsActive, counters.connectionsHalfOpen],
      [1, 1, 0],
    );
    assert.deepEqual(peer.take(), [], "nothing is sent for the handshake's ACK");

    peer.send({ seq: ISN + 1, ack: iss + 1, flags: TCP_ACK | TCP_PSH, payload: text("hello") });
    assert.deepEqual(peer.take(), [], "the first segment's ACK waits for the batch to end");
    await peer.run();
    const ack = peer.takeOne();
    assert.deepEqual([ack.seq, ack.ack, ack.flags, ack.payload.length], [
      iss + 1,
      ISN + 6,
      TCP_ACK,
      0,
    ]);
    assert.equal(ack.window, (256 * 1024 - 5) >>> 3, "the window is what is free, scaled");

    peer.send({ seq: ISN + 6, ack: iss + 1, flags: TCP_ACK, payload: text("abc") });
    peer.send({ seq: ISN + 9, ack: iss + 1, flags: TCP_ACK, payload: text("def") });
    const immediate = peer.takeOne();
    assert.equal(immediate.ack, ISN + 12, "the second segment is ACKed at once");
    await peer.run();
    assert.deepEqual(peer.take(), [], "no ACK is owed after that");

    const reader = connection.readable.getReader();
    assert.equal(new TextDecoder().decode(await readBytes(reader, 11)), "helloabcdef");
    assert.equal(counters.segmentsIn, 5);
  });
});

Deno.test("out-of-order data: SACKed duplicate ACK, then in-order delivery when the gap fills", async () => {
  await withPeer({}, async (peer) => {
    const { iss, connection } = await peer.handshake(0xfffffffd); // data crosses 2^32
    const first = 0xfffffffe;
    peer.send({ seq: (first + 5) >>> 0, ack: iss + 1, flags: TCP_ACK, payload: text("world") });
    const dup = peer.takeOne();
    assert.equal(dup.ack, first, "still waiting for the first byte");
    assert.deepEqual(dup.options.sack, [[(first + 5) >>> 0, (first + 10) >>> 0]]);
    assert.equal(peer.stack.counters.outOfOrder, 1);

    peer.send({ seq: (first + 12) >>> 0, ack: iss + 1, flags: TCP_ACK, payload: text("!!") });
    assert.deepEqual(peer.takeOne().options.sack, [
      [(first + 12) >>> 0, (first + 14) >>> 0],
      [(first + 5) >>> 0, (first + 10) >>> 0],
    ], "the newest block comes first");

    peer.send({ seq: first, ack: iss + 1, flags: TCP_ACK, payload: text("hello") });
    const filled = peer.takeOne();
    assert.equal(filled.ack, (first + 10) >>> 0, "the hole before 'world' is filled");
    assert.deepEqual(filled.options.sack, [[(first + 12) >>> 0, (first + 14) >>> 0]]);

    peer.send({ seq: (first + 8) >>> 0, ack: iss + 1, flags: TCP_ACK, payload: text("ld, ") });
    assert.equal(peer.takeOne().ack, (first + 14) >>> 0, "overlap trimmed, later data joined");

    peer.send({ seq: first, ack: iss + 1, flags: TCP_ACK, payload: text("hello") });
    const old = peer.takeOne();
    assert.equal(old.ack, (first + 14) >>> 0, "an old duplicate is ACKed and dropped");

    const reader = connection.readable.getReader();
    assert.equal(new TextDecoder().decode(await readBytes(reader, 14)), "helloworld, !!");
    peer.send({ seq: (first + 14) >>> 0, ack: iss + 1, flags: TCP_ACK | TCP_FIN });
    await peer.run();
    assert.equal((await reader.read()).done, true);
  });
});

Deno.test("retransmission timeout: 200 ms after a 0 ms RTT sample, doubling, cleared by the ACK", async () => {
  await withPeer({ minRtoMs: 200 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN);
    const writer = connection.writable.getWriter();
    await writer.write(text("x".repeat(100)));
    await peer.run();
    const data = peer.takeOne();
    assert.deepEqual([data.seq, data.flags, data.payload.length], [
      iss + 1,
      TCP_ACK | TCP_PSH,
      100,
    ]);
    await peer.run(199);
    assert.deepEqual(peer.take(), []);
    await peer.run(1);
    const again = peer.takeOne();
    assert.deepEqual([again.seq, again.payload], [data.seq, data.payload], "same bytes again");
    await peer.run(399);
    assert.deepEqual(peer.take(), []);
    await peer.run(1);
    assert.equal(peer.takeOne().seq, iss + 1, "the second retransmission after 400 ms");
    assert.equal(peer.stack.counters.retransmissions, 2);

    peer.send({ seq: ISN + 1, ack: iss + 101, flags: TCP_ACK });
    await peer.run(60_000);
    assert.deepEqual(peer.take(), [], "nothing more once everything is acknowledged");
  });
});

Deno.test("unanswered retransmissions reset the connection after the limit", async () => {
  await withPeer({ minRtoMs: 200, maxRetransmissions: 3 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN);
    const reader = connection.readable.getReader();
    const read = reader.read().then(() => "read", (error: TcpConnectionError) => error);
    await connection.writable.getWriter().write(text("data"));
    await peer.run(200 + 400 + 800);
    assert.equal(peer.take().length, 4, "the segment and 3 retransmissions");
    await peer.run(1600);
    const reset = peer.takeOne();
    assert.deepEqual([reset.seq, reset.ack, reset.flags], [iss + 5, ISN + 1, TCP_RST | TCP_ACK]);
    const error = await read;
    assert.ok(error instanceof TcpConnectionError, String(error));
    assert.equal(error.code, "timeout");
    assert.match(error.message, /^TCP 10\.0\.0\.1:40000 > 10\.77\.0\.2:80: no acknowledgment/);
    await assert.rejects(connection.closed, /no acknowledgment after 3 retransmissions/);
    const counters = peer.stack.counters;
    assert.deepEqual([counters.connectionsTimedOut, counters.connectionsReset], [1, 1]);
    assert.equal(counters.connectionsActive, 0);
    assert.equal(peer.stack.size, 0);
  });
});

Deno.test("three duplicate ACKs trigger a fast retransmit before the timer", async () => {
  await withPeer({}, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN, { mss: 536, windowScale: 7 });
    peer.send({ seq: ISN + 1, ack: iss + 1, flags: TCP_ACK, window: 1024 }); // 128 KiB
    await connection.writable.getWriter().write(new Uint8Array(20 * 536));
    await peer.run();
    const burst = peer.take();
    assert.equal(burst.length, 10, `the initial window is 10 segments: ${describe(burst)}`);
    assert.ok(burst.every((s, i) => s.seq === iss + 1 + 536 * i && s.payload.length === 536));
    const dup = { seq: ISN + 1, ack: iss + 1 + 536, flags: TCP_ACK, window: 1024 };
    peer.send(dup); // new data acknowledged: slow start sends two more
    await peer.run();
    assert.equal(peer.take().length, 2);
    peer.send(dup);
    peer.send(dup);
    assert.deepEqual(peer.take(), []);
    peer.send(dup);
    const resent = peer.takeOne();
    assert.deepEqual([resent.seq, resent.payload.length], [iss + 1 + 536, 536]);
    assert.equal(peer.stack.counters.retransmissions, 1);
  });
});

Deno.test("segments for unknown flows get RFC 9293 RSTs; refused SYNs too; RSTs get nothing", async () => {
  await withPeer({}, async (peer) => {
    peer.send({ seq: 7, ack: 1234, flags: TCP_ACK });
    const withAck = peer.takeOne();
    assert.deepEqual([withAck.seq, withAck.ack, withAck.flags], [1234, 0, TCP_RST]);
    peer.send({ seq: 100, flags: TCP_PSH, payload: text("0123456789") });
    const noAck = peer.takeOne();
    assert.deepEqual([noAck.seq, noAck.ack, noAck.flags], [0, 110, TCP_RST | TCP_ACK]);
    peer.send({ seq: 100, flags: TCP_FIN });
    assert.equal(peer.takeOne().ack, 101, "a FIN counts one");
    peer.send({ seq: 5, ack: 6, flags: TCP_RST | TCP_ACK });
    peer.send({ seq: 5, flags: TCP_RST });
    assert.deepEqual(peer.take(), []);
    peer.send({ seq: 300, flags: TCP_SYN });
    const refused = peer.takeOne();
    assert.deepEqual([refused.seq, refused.ack, refused.flags], [0, 301, TCP_RST | TCP_ACK]);
    const counters = peer.stack.counters;
    assert.deepEqual([counters.resetsSent, counters.synsDropped], [4, 1]);
    assert.equal(peer.stack.size, 0);
    await peer.run();
  }, { accept: (flow) => flow.dstPort !== 80 });
});

Deno.test("peer closes first: CLOSE_WAIT, then our FIN, LAST_ACK, CLOSED", async () => {
  await withPeer({}, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN);
    const reader = connection.readable.getReader();
    peer.send({ seq: ISN + 1, ack: iss + 1, flags: TCP_ACK | TCP_FIN, payload: text("bye") });
    const finAck = peer.takeOne();
    assert.deepEqual([finAck.ack, finAck.flags], [ISN + 5, TCP_ACK]);
    assert.equal(connection.state, "CLOSE_WAIT");
    assert.equal(new TextDecoder().decode(await readBytes(reader, 10)), "bye");
    assert.equal((await reader.read()).done, true);

    const writer = connection.writable.getWriter();
    await writer.write(text("last"));
    const closing = writer.close();
    await peer.run();
    const sent = peer.take();
    assert.equal(new TextDecoder().decode(sent[0].payload), "last");
    const fin = sent.at(-1)!;
    assert.equal(fin.flags & TCP_FIN, TCP_FIN, describe(sent));
    assert.equal(fin.seq + fin.payload.length, iss + 5, "the FIN follows the data");
    assert.equal(connection.state, "LAST_ACK");
    peer.send({ seq: ISN + 5, ack: iss + 6, flags: TCP_ACK });
    await closing;
    await connection.closed;
    assert.equal(connection.state, "CLOSED");
    assert.equal(peer.stack.size, 0);
    assert.equal(peer.stack.counters.connectionsActive, 0);
    peer.send({ seq: ISN + 5, ack: iss + 6, flags: TCP_ACK });
    assert.equal(peer.takeOne().flags, TCP_RST, "the flow is gone");
  });
});

Deno.test("we close first: FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT (resent FIN re-ACKed), CLOSED", async () => {
  await withPeer({ timeWaitMs: 1000 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN);
    const closing = connection.writable.getWriter().close();
    await peer.run();
    const fin = peer.takeOne();
    assert.deepEqual([fin.seq, fin.flags], [iss + 1, TCP_ACK | TCP_FIN]);
    assert.equal(connection.state, "FIN_WAIT_1");
    peer.send({ seq: ISN + 1, ack: iss + 2, flags: TCP_ACK });
    await closing;
    assert.equal(connection.state, "FIN_WAIT_2");

    peer.send({ seq: ISN + 1, ack: iss + 2, flags: TCP_ACK, payload: text("more") });
    peer.send({ seq: ISN + 5, ack: iss + 2, flags: TCP_ACK | TCP_FIN });
    assert.equal(peer.take().at(-1)?.ack, ISN + 6);
    assert.equal(connection.state, "TIME_WAIT");
    await connection.closed;
    const reader = connection.readable.getReader();
    assert.equal(new TextDecoder().decode(await readBytes(reader, 10)), "more");

    await peer.run(900);
    peer.send({ seq: ISN + 5, ack: iss + 2, flags: TCP_ACK | TCP_FIN });
    const reAck = peer.takeOne();
    assert.deepEqual([reAck.seq, reAck.ack], [iss + 2, ISN + 6]);
    await peer.run(900);
    assert.equal(peer.stack.size, 1, "the resent FIN restarted TIME_WAIT");
    await peer.run(100);
    assert.equal(peer.stack.size, 0);
    assert.equal(connection.state, "CLOSED");
  });
});

Deno.test("simultaneous close: FIN_WAIT_1, CLOSING, TIME_WAIT", async () => {
  await withPeer({}, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN);
    void connection.writable.getWriter().close();
    await peer.run();
    assert.equal(peer.takeOne().flags, TCP_ACK | TCP_FIN);
    peer.send({ seq: ISN + 1, ack: iss + 1, flags: TCP_ACK | TCP_FIN });
    assert.equal(peer.takeOne().ack, ISN + 2);
    assert.equal(connection.state, "CLOSING");
    peer.send({ seq: ISN + 2, ack: iss + 2, flags: TCP_ACK });
    assert.equal(connection.state, "TIME_WAIT");
  });
});

Deno.test("RST: exact sequence resets, in-window gets a challenge ACK, outside is ignored", async () => {
  await withPeer({}, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN);
    peer.send({ seq: ISN + 100, flags: TCP_RST });
    const challenge = peer.takeOne();
    assert.deepEqual([challenge.seq, challenge.ack, challenge.flags], [iss + 1, ISN + 1, TCP_ACK]);
    peer.send({ seq: ISN + 1 + 10_000_000, flags: TCP_RST });
    assert.deepEqual(peer.take(), []);
    peer.send({ seq: ISN + 50, ack: iss + 1, flags: TCP_SYN });
    assert.equal(peer.takeOne().flags, TCP_ACK, "a SYN in window gets a challenge ACK too");
    assert.equal(connection.state, "ESTABLISHED");

    const reader = connection.readable.getReader();
    const read = reader.read().then(() => "read", (error: TcpConnectionError) => error);
    peer.send({ seq: ISN + 1, flags: TCP_RST });
    assert.deepEqual(peer.take(), []);
    const error = await read;
    assert.ok(error instanceof TcpConnectionError);
    assert.equal(error.code, "reset");
    assert.match(error.message, /connection reset by peer/);
    await assert.rejects(connection.writable.getWriter().write(text("x")), /reset by peer/);
    assert.equal(peer.stack.counters.connectionsReset, 1);
    assert.equal(peer.stack.size, 0);
  });
});

Deno.test("zero window: no data, probes with backoff, data once the window opens", async () => {
  await withPeer({ minRtoMs: 200 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN, { mss: 1460 }, 0);
    peer.send({ seq: ISN + 1, ack: iss + 1, flags: TCP_ACK, window: 0 });
    await connection.writable.getWriter().write(text("blocked"));
    await peer.run(199);
    assert.deepEqual(peer.take(), []);
    await peer.run(1);
    const probe = peer.takeOne();
    assert.deepEqual([probe.seq, probe.ack, probe.flags, probe.payload.length], [
      iss,
      ISN + 1,
      TCP_ACK,
      0,
    ]);
    peer.send({ seq: ISN + 1, ack: iss + 1, flags: TCP_ACK, window: 0 }); // the probe's answer
    await peer.run(399);
    assert.deepEqual(peer.take(), []);
    await peer.run(1);
    assert.equal(peer.takeOne().seq, iss, "the next probe after 400 ms");
    peer.send({ seq: ISN + 1, ack: iss + 1, flags: TCP_ACK, window: 4 });
    await peer.run();
    const data = peer.takeOne();
    assert.equal(new TextDecoder().decode(data.payload), "bloc", "only what the window allows");
  });
});

Deno.test("our window shrinks while data is unread, data beyond it is dropped, reading reopens it", async () => {
  await withPeer({ receiveWindow: 2048, mtu: 1500 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN, { mss: 1460 });
    const from = (offset: number, length: number) =>
      peer.send({
        seq: ISN + 1 + offset,
        ack: iss + 1,
        flags: TCP_ACK,
        payload: new Uint8Array(length).fill(offset & 0xff),
      });
    from(0, 1024);
    await peer.run();
    assert.equal(peer.takeOne().window, 1024);
    from(1024, 1024);
    await peer.run();
    const full = peer.takeOne();
    assert.deepEqual([full.ack, full.window], [ISN + 2049, 0]);
    from(2048, 100);
    const dropped = peer.takeOne();
    assert.deepEqual([dropped.ack, dropped.window], [ISN + 2049, 0], "beyond the window");

    const reader = connection.readable.getReader();
    assert.equal((await readBytes(reader, 2048)).length, 2048);
    await peer.run();
    const update = peer.takeOne();
    assert.deepEqual([update.ack, update.window], [ISN + 2049, 2048], "a window update");
  });
});

Deno.test("writes wait while the send buffer is full and resume as ACKs free it", async () => {
  await withPeer({ sendBuffer: 1024 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN, { mss: 512 });
    const writer = connection.writable.getWriter();
    let written = false;
    const write = writer.write(new Uint8Array(3000)).then(() => written = true);
    await peer.run();
    const first = peer.take();
    assert.deepEqual(first.map((s) => s.payload.length), [512, 512]);
    assert.equal(written, false, "2976 bytes do not fit a 1024-byte buffer");
    peer.send({ seq: ISN + 1, ack: iss + 1025, flags: TCP_ACK });
    await peer.run();
    assert.deepEqual(peer.take().map((s) => s.payload.length), [512, 512]);
    assert.equal(written, false);
    peer.send({ seq: ISN + 1, ack: iss + 2049, flags: TCP_ACK });
    await peer.run();
    await write;
    assert.deepEqual(peer.take().map((s) => s.payload.length), [512, 440]);
  });
});

Deno.test("SYN backlog: extra SYNs dropped; SYN-ACK resent, half-open dropped after the limit", async () => {
  await withPeer({ synBacklog: 2, maxSynAckRetransmissions: 1 }, async (peer) => {
    for (const port of [1001, 1002, 1003]) peer.send({ seq: port, flags: TCP_SYN, srcPort: port });
    assert.equal(peer.take().length, 2);
    assert.equal(peer.stack.counters.synsDropped, 1);
    assert.equal(peer.stack.counters.connectionsHalfOpen, 2);
    peer.send({ seq: 1001, flags: TCP_SYN, srcPort: 1001 });
    assert.equal(peer.takeOne().ack, 1002, "a resent SYN gets the SYN-ACK again");
    await peer.run(1000);
    assert.equal(peer.take().length, 2, "both SYN-ACKs resent after the initial RTO");
    await peer.run(2000);
    assert.deepEqual(peer.take(), []);
    assert.equal(peer.stack.size, 0);
    assert.equal(peer.stack.counters.connectionsHalfOpen, 0);
    assert.equal(peer.stack.counters.retransmissions, 3);
  });
});

Deno.test("malformed and non-TCP packets are counted and dropped", async () => {
  await withPeer({}, async (peer) => {
    const packet = peer.packet({ seq: 1, flags: TCP_SYN });
    packet[36] ^= 0x01; // the TCP checksum
    peer.stack.receive(packet);
    peer.stack.receive(new Uint8Array([0x45, 0, 0]));
    const udp = new Uint8Array(28);
    writeUdpPacket(udp, {
      src: peer.peerAddress,
      dst: peer.serviceAddress,
      srcPort: 1,
      dstPort: 2,
      payload: new Uint8Array(0),
    });
    peer.stack.receive(udp);
    assert.deepEqual(peer.take(), []);
    const counters = peer.stack.counters;
    assert.deepEqual([counters.droppedMalformed, counters.droppedNotTcp, counters.segmentsIn], [
      2,
      1,
      0,
    ]);
    await peer.run();
  });
});

Deno.test("SACK recovery resends every lost hole within one round trip, nothing SACKed", async () => {
  await withPeer({}, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN, {
      mss: 536,
      windowScale: 7,
      sackPermitted: true,
    });
    const base = iss + 1;
    const at = (i: number) => (base + 536 * i) >>> 0;
    const ack = (sack: Array<[number, number]>, cumulative = at(1)) =>
      peer.send({
        seq: ISN + 1,
        ack: cumulative,
        flags: TCP_ACK,
        window: 1024,
        options: { sack },
      });
    peer.send({ seq: ISN + 1, ack: base, flags: TCP_ACK, window: 1024 });
    await connection.writable.getWriter().write(new Uint8Array(30 * 536));
    await peer.run();
    assert.equal(peer.take().length, 10);
    // Segments 1 and 4 are lost; the peer SACKs 2, 3, 5, 6, 7 as they arrive.
    ack([], at(1));
    ack([[at(2), at(3)]]);
    ack([[at(2), at(4)]]);
    ack([[at(5), at(6)], [at(2), at(4)]]);
    ack([[at(5), at(7)], [at(2), at(4)]]);
    ack([[at(5), at(8)], [at(2), at(4)]]);
    await peer.run();
    const resent = peer.take().filter((s) => s.seq - base < 10 * 536);
    assert.deepEqual(resent.map((s) => (s.seq - base) / 536), [1, 4], describe(resent));
    assert.equal(peer.stack.counters.fastRetransmits, 1);
    assert.equal(peer.stack.counters.retransmissions, 2);
  });
});

Deno.test("Karn: an ACK after a retransmission gives no RTT sample; the backed-off RTO stays", async () => {
  await withPeer({ minRtoMs: 200 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN); // RTT 0 ms: RTO 200 ms
    const writer = connection.writable.getWriter();
    await writer.write(text("a"));
    await peer.run(200);
    assert.equal(peer.take().length, 2, "sent, then resent after 200 ms");
    await peer.run(50);
    peer.send({ seq: ISN + 1, ack: iss + 2, flags: TCP_ACK }); // 250 ms after the first send
    await writer.write(text("b"));
    await peer.run();
    assert.equal(peer.takeOne().seq, iss + 2);
    await peer.run(399);
    assert.deepEqual(peer.take(), [], "a 250 ms sample would have made the RTO 281 ms");
    await peer.run(1);
    assert.equal(peer.takeOne().seq, iss + 2, "resent after the backed-off 400 ms");
  });
});

Deno.test("closing the stack resets every connection", async () => {
  await withPeer({}, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN);
    peer.stack.close();
    const reset = peer.takeOne();
    assert.deepEqual([reset.seq, reset.ack, reset.flags], [iss + 1, ISN + 1, TCP_RST | TCP_ACK]);
    await assert.rejects(
      connection.readable.getReader().read(),
      (error: TcpConnectionError) => error.code === "stack-closed",
    );
    peer.send({ seq: ISN, flags: TCP_SYN, srcPort: 1 });
    assert.deepEqual(peer.take(), [], "a closed stack ignores packets");
  });
});

Deno.test("tail loss: a probe after 2 SRTT resends the last segment; its SACK lets RACK find the rest", async () => {
  await withPeer({ minRtoMs: 200 }, async (peer) => {
    const { iss, connection } = await peer.handshake(ISN, {
      mss: 536,
      windowScale: 7,
      sackPermitted: true,
    });
    const at = (i: number) => (iss + 1 + 536 * i) >>> 0;
    await connection.writable.getWriter().write(new Uint8Array(3 * 536));
    await peer.run();
    assert.deepEqual(peer.take().map((s) => s.seq), [at(0), at(1), at(2)]);
    await peer.run(1);
    // RTT 1 ms (after the handshake's 0 ms): SRTT 0.125 ms; the probe waits its 2 ms floor.
    peer.send({ seq: ISN + 1, ack: at(1), flags: TCP_ACK, window: 1024 });
    await peer.run(1);
    assert.deepEqual(peer.take(), [], "segments 1 and 2 are lost; no probe yet");
    await peer.run(1);
    const probe = peer.takeOne();
    assert.deepEqual([probe.seq, probe.payload.length], [at(2), 536], "the last segment");
    assert.equal(peer.stack.counters.tailLossProbes, 1);
    await peer.run(1);
    peer.send({
      seq: ISN + 1,
      ack: at(1),
      flags: TCP_ACK,
      window: 1024,
      options: { sack: [[at(2), at(3)]] },
    });
    const resent = peer.takeOne();
    assert.equal(resent.seq, at(1), "RACK: segment 1, sent before the probe, is lost");
    peer.send({ seq: ISN + 1, ack: at(3), flags: TCP_ACK, window: 1024 });
    await peer.run(1_000);
    assert.deepEqual(peer.take(), []);
    const counters = peer.stack.counters;
    assert.deepEqual(
      [counters.retransmissionTimeouts, counters.fastRetransmits, counters.retransmissions],
      [0, 1, 2],
    );
  });
});
