/**
 * The kernel mode's pure parts: the address pool, the in-place rewrites (checksums checked
 * against full recomputation), a session's checks both ways, and the nftables script (checked
 * by `nft -c`, which changes nothing, when nft is installed).
 */
import assert from "node:assert/strict";
import {
  checksumVerifies,
  parseIpAddress,
  parseIpv4,
  parseTcp,
  parseUdp,
  PROTOCOL_ICMP,
  PROTOCOL_TCP,
  PROTOCOL_UDP,
  TCP_SYN,
  writeDestinationUnreachable,
  writeIpv4Header,
  writeTcpPacket,
  writeUdpPacket,
} from "../lib/packet/mod.ts";
import {
  AddressPool,
  ipv4ToNumber,
  numberToIpv4,
  parseIpv4Prefix,
} from "../lib/connector/kernel/address_pool.ts";
import { rewriteIpv4, translateIcmpError } from "../lib/connector/kernel/packet_rewrite.ts";
import { emptyKernelStats, KernelSession } from "../lib/connector/kernel/kernel_session.ts";
import { natRuleScript, natTableName } from "../lib/connector/kernel/nat_rules.ts";

const ip = (text: string) => ipv4ToNumber(parseIpAddress(text));
const AGENT = parseIpAddress("100.64.0.1");
const SERVICE = parseIpAddress("100.80.0.10");

function udp(src: Uint8Array, dst: Uint8Array, dstPort: number, payload = "hello"): Uint8Array {
  const out = new Uint8Array(1500);
  const length = writeUdpPacket(out, {
    src,
    dst,
    srcPort: 40000,
    dstPort,
    payload: new TextEncoder().encode(payload),
  });
  return out.slice(0, length);
}

function tcpSyn(src: Uint8Array, dst: Uint8Array, dstPort: number): Uint8Array {
  const out = new Uint8Array(1500);
  const length = writeTcpPacket(out, {
    src,
    dst,
    srcPort: 40001,
    dstPort,
    seq: 1234,
    ack: 0,
    flags: TCP_SYN,
    window: 65535,
  });
  return out.slice(0, length);
}

function echoRequest(src: Uint8Array, dst: Uint8Array): Uint8Array {
  const out = new Uint8Array(28);
  writeIpv4Header(out, { src, dst, protocol: PROTOCOL_ICMP, payloadLength: 8 });
  out.set([8, 0, 0, 0, 0, 7, 0, 1], 20);
  const sum = 0xffff - ((8 << 8) + 7 + 1);
  out[22] = sum >> 8;
  out[23] = sum & 0xff;
  return out;
}

/** Whether the packet's IP and transport checksums verify (recomputed from scratch). */
function checksumsVerify(packet: Uint8Array): boolean {
  const parsed = parseIpv4(packet);
  if (typeof parsed === "string") return false;
  if (parsed.protocol === PROTOCOL_TCP) return typeof parseTcp(parsed) !== "string";
  if (parsed.protocol === PROTOCOL_UDP) return typeof parseUdp(parsed) !== "string";
  return checksumVerifies(packet, parsed.payloadOffset, parsed.packetLength);
}

Deno.test("address pool: round robin, bounded, the gateway and broadcast never handed out", () => {
  const pool = new AddressPool("10.9.0.0/29");
  assert.equal(pool.capacity, 5);
  assert.equal(numberToIpv4(pool.gateway), "10.9.0.1");
  const taken = [1, 2, 3, 4, 5].map(() => pool.allocate()!);
  assert.deepEqual(taken.map(numberToIpv4), [
    "10.9.0.2",
    "10.9.0.3",
    "10.9.0.4",
    "10.9.0.5",
    "10.9.0.6",
  ]);
  assert.equal(pool.allocate(), null);
  pool.release(taken[1]);
  assert.equal(numberToIpv4(pool.allocate()!), "10.9.0.3");
  pool.release(taken[0]);
  pool.release(taken[3]);
  // Round robin: the next free one after the last handed out (.3), not the lowest (.2).
  assert.equal(numberToIpv4(pool.allocate()!), "10.9.0.5");
  assert.equal(numberToIpv4(pool.allocate()!), "10.9.0.2");
  assert.equal(new AddressPool().capacity, 65533);
  assert.throws(() => parseIpv4Prefix("10.9.0.1/29"), /host bits/);
  assert.throws(() => parseIpv4Prefix("fd00::/64"), /IPv4/);
  assert.throws(() => parseIpv4Prefix("10.0.0.0/31"), /8-30/);
});

Deno.test("rewrite: addresses replaced, IP/TCP/UDP checksums still verify; UDP without checksum stays 0", () => {
  const src = ip("100.127.0.9"), dst = ip("10.200.3.2");
  for (const packet of [udp(AGENT, SERVICE, 7007), tcpSyn(AGENT, SERVICE, 8080)]) {
    rewriteIpv4(packet, src, dst);
    assert.equal(numberToIpv4(ipv4ToNumber(packet.subarray(12, 16))), "100.127.0.9");
    assert.equal(numberToIpv4(ipv4ToNumber(packet.subarray(16, 20))), "10.200.3.2");
    assert.ok(checksumsVerify(packet));
  }
  // Many random addresses: the incremental update equals the recomputed checksum.
  for (let i = 0; i < 2000; i++) {
    const packet = udp(AGENT, SERVICE, 7007, `payload ${i}`);
    rewriteIpv4(packet, (Math.random() * 2 ** 32) >>> 0, (Math.random() * 2 ** 32) >>> 0);
    assert.ok(checksumsVerify(packet), `round ${i}`);
  }
  const none = udp(AGENT, SERVICE, 7007);
  none[26] = none[27] = 0;
  rewriteIpv4(none, src, dst);
  assert.equal((none[26] << 8) | none[27], 0);
  assert.ok(checksumsVerify(none));
  const icmp = echoRequest(AGENT, SERVICE);
  rewriteIpv4(icmp, src, dst);
  assert.ok(checksumsVerify(icmp));
});

Deno.test("rewrite: an ICMP error's outer and quoted addresses are translated, all checksums verify", () => {
  // The kernel's port unreachable for a UDP packet pool → target, sent target → pool.
  const sent = udp(parseIpAddress("100.127.0.9"), parseIpAddress("10.200.3.2"), 7007);
  const error = new Uint8Array(1500);
  const length = writeDestinationUnreachable(sent, error, { code: 3 }) as number;
  const packet = error.slice(0, length);
  translateIcmpError(packet, ipv4ToNumber(SERVICE), ipv4ToNumber(AGENT));
  assert.ok(checksumsVerify(packet));
  assert.deepEqual([...packet.subarray(12, 20)], [...SERVICE, ...AGENT]);
  const inner = packet.subarray(28);
  assert.deepEqual([...inner.subarray(12, 20)], [...AGENT, ...SERVICE]);
  assert.ok(checksumVerifies(inner, 0, 20));
  // The quoted UDP header is the agent's original one again, checksum included.
  assert.deepEqual([...inner.subarray(20, 28)], [...udp(AGENT, SERVICE, 7007).subarray(20, 28)]);
});

function session() {
  const written: Uint8Array[] = [];
  const sent: Uint8Array[] = [];
  const stats = emptyKernelStats();
  const byPort = new Map([[8080, ip("10.200.3.2")], [7007, ip("10.200.3.2")], [
    9090,
    ip("127.0.0.1"),
  ]]);
  const s = new KernelSession(ip("100.127.0.9"), { byPort, echo: ip("10.200.3.2") }, {
    write: (packet) => written.push(packet.slice()),
    send: (packet) => sent.push(packet.slice()),
    stats,
    scratch: new Uint8Array(1500),
  });
  return { s, written, sent, stats };
}

Deno.test("session: forwards to the port's target from the pool address, and maps replies back", () => {
  const { s, written, sent, stats } = session();
  s.fromAgent(udp(AGENT, SERVICE, 7007));
  s.fromAgent(tcpSyn(AGENT, SERVICE, 9090));
  s.fromAgent(echoRequest(AGENT, SERVICE));
  assert.equal(stats.forwarded, 3);
  const ends = written.map((p) =>
    [p.subarray(12, 16), p.subarray(16, 20)].map((a) => numberToIpv4(ipv4ToNumber(a))).join(" > ")
  );
  assert.deepEqual(ends, [
    "100.127.0.9 > 10.200.3.2",
    "100.127.0.9 > 127.0.0.1",
    "100.127.0.9 > 10.200.3.2",
  ]);
  assert.ok(written.every(checksumsVerify));
  // The target's reply (src 10.200.3.2:7007) goes back as service → agent.
  const reply = new Uint8Array(1500);
  const n = writeUdpPacket(reply, {
    src: parseIpAddress("10.200.3.2"),
    dst: parseIpAddress("100.127.0.9"),
    srcPort: 7007,
    dstPort: 40000,
    payload: new Uint8Array(3),
  });
  s.fromKernel(reply.slice(0, n));
  assert.equal(sent.length, 1);
  assert.deepEqual([...sent[0].subarray(12, 20)], [...SERVICE, ...AGENT]);
  assert.ok(checksumsVerify(sent[0]));
  // From a non-target port of the same host: dropped.
  const stray = reply.slice(0, n);
  stray[20] = 0;
  stray[21] = 53;
  s.fromKernel(stray);
  assert.equal(sent.length, 1);
  assert.equal(stats.dropped.notFromTarget, 1);
  assert.equal(stats.packetsOut, 1);
});

Deno.test("session: other ports, addresses, protocols and sources are refused or dropped, never written", () => {
  const { s, written, sent, stats } = session();
  s.fromAgent(udp(AGENT, SERVICE, 7007));
  assert.equal(written.length, 1);
  s.fromAgent(udp(AGENT, SERVICE, 9999));
  s.fromAgent(tcpSyn(AGENT, SERVICE, 22));
  s.fromAgent(udp(AGENT, parseIpAddress("100.80.0.99"), 7007));
  s.fromAgent(udp(parseIpAddress("100.64.0.2"), SERVICE, 7007));
  const gre = udp(AGENT, SERVICE, 7007);
  gre[9] = 47;
  gre[10] = gre[11] = 0;
  const sum = (() => {
    let total = 0;
    for (let i = 0; i < 20; i += 2) total += (gre[i] << 8) | gre[i + 1];
    while (total > 0xffff) total = (total & 0xffff) + (total >>> 16);
    return ~total & 0xffff;
  })();
  gre[10] = sum >> 8;
  gre[11] = sum & 0xff;
  s.fromAgent(gre);
  assert.equal(written.length, 1, "nothing refused reached the kernel");
  assert.deepEqual(stats.refused, { port: 2, address: 1, protocol: 1 });
  assert.equal(stats.dropped.source, 1);
  // Answers: ICMP port unreachable, RST, ICMP host unreachable, ICMP protocol unreachable.
  assert.equal(sent.length, 4);
  assert.deepEqual(sent.map((p) => p[9]), [1, 6, 1, 1]);
  assert.deepEqual([sent[0][20], sent[0][21]], [3, 3]);
  assert.equal(sent[1][33] & 0x04, 0x04, "a RST");
  assert.deepEqual([sent[2][20], sent[2][21]], [3, 1]);
  assert.deepEqual([sent[3][20], sent[3][21]], [3, 2]);
});

Deno.test("nft script: one table named after the TUN, the allow list, and nft -c accepts it", async () => {
  const script = natRuleScript({
    tun: "ztnak0",
    pool: "100.127.0.0/16",
    targets: [{ address: "10.200.3.2", protocol: "tcp", port: 8080 }],
    echo: ["10.200.3.2"],
  });
  assert.equal(natTableName("ztna.k-0"), "ztna_ztna_k_0");
  assert.match(script, /^table ip ztna_ztnak0\ndelete table ip ztna_ztnak0\n/);
  assert.match(script, /ip daddr 10\.200\.3\.2 tcp dport 8080 accept/);
  assert.match(script, /ip saddr 100\.127\.0\.0\/16 oifname != "ztnak0" masquerade/);
  const check = await new Deno.Command("nft", { args: ["-c", "-f", "-"], stdin: "piped" })
    .spawn();
  const writer = check.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  assert.equal((await check.status).code, 0);
});
