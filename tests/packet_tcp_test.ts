/**
 * lib/packet/tcp.ts, tcp_options.ts, tcp_seq.ts: scapy's SYNs (MSS, window scale,
 * SACK-permitted, timestamps) and data segments read exactly; segments we build dissected by
 * scapy with the same fields, options and a valid checksum; malformed segments rejected with
 * codes; sequence arithmetic around 2^32.
 */
import assert from "node:assert/strict";
import {
  isPacketError,
  type PacketError,
  parseIp,
  parseIpAddress,
  parseTcp,
  parseTcpOptions,
  seqAdd,
  seqDiff,
  seqGe,
  seqGt,
  seqLe,
  seqLt,
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  tcpHeadersLength,
  type TcpOptions,
  type TcpPacketInit,
  type TcpSegment,
  writeTcpPacket,
} from "../lib/packet/mod.ts";
import { embed, prng, resealIpv4, scratch } from "./packet/bytes.ts";
import { askScapy, badChecksums, fromHex, layer, type ScapyAnswer, toHex } from "./packet/scapy.ts";

const V4 = 'src="192.0.2.1", dst="198.51.100.7"';
const V6 = 'src="2001:db8::1", dst="2001:db8::2"';
const SYN_OPTIONS = `[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456789, 0)), ` +
  `("NOP", None), ("WScale", 7)]`;

const BUILD = {
  v4Syn: `IP(${V4})/TCP(sport=40000, dport=443, seq=0xfffffff0, flags="S", window=64240, ` +
    `options=${SYN_OPTIONS})`,
  v6SynAck: `IPv6(${V6})/TCP(sport=443, dport=40000, seq=0x80000000, ack=0xfffffff1, ` +
    `flags="SA", window=65535, options=[("MSS", 1220), ("NOP", None), ("WScale", 14), ` +
    `("SAckOK", b""), ("EOL", None)])`,
  v4Data: `IP(${V4})/TCP(sport=40000, dport=443, seq=1, ack=0xffffffff, flags="PA", ` +
    `window=501, options=[("NOP", None), ("NOP", None), ("Timestamp", (0xfedcba98, 42))])` +
    `/Raw(bytes(i % 256 for i in range(1001)))`,
  v6Urgent: `IPv6(${V6})/IPv6ExtHdrDestOpt()/TCP(sport=1, dport=2, seq=5, ack=6, ` +
    `flags="UA", urgptr=3, window=0)/b"urgent"`,
  v4Sack: `IP(${V4})/TCP(sport=1, dport=2, flags="A", options=[("NOP", None), ("NOP", None), ` +
    `("SAck", (100, 200, 0xfffffff0, 0x10))])`,
  v4Unknown: `IP(${V4})/TCP(sport=1, dport=2, flags="S", ` +
    `options=[(99, b"abc"), ("MSS", 1000), (253, b"")])`,
  v4AllFlags: `IP(${V4})/TCP(sport=1, dport=2, flags=0xff, seq=0, ack=0)`,
  v4BigScale: `IP(${V4})/TCP(sport=1, dport=2, flags="S", options=[("WScale", 15)])`,
};

const SRC4 = parseIpAddress("10.0.0.1");
const DST4 = parseIpAddress("10.0.0.2");
const SRC6 = parseIpAddress("fd00::1");
const DST6 = parseIpAddress("fd00::2");

/** Segments we build, with what scapy must read back. */
const OURS_INIT: Record<string, { init: TcpPacketInit; options: unknown[] }> = {
  v4Syn: {
    init: {
      src: SRC4,
      dst: DST4,
      srcPort: 50000,
      dstPort: 22,
      seq: 0xffffffff,
      ack: 0,
      flags: TCP_SYN,
      window: 65535,
      options: { mss: 1460, sackPermitted: true, timestamp: { value: 1, echo: 0 }, windowScale: 7 },
    },
    options: [["MSS", 1460], ["SAckOK", ""], ["Timestamp", [1, 0]], ["NOP", null], ["WScale", 7]],
  },
  v6SynAck: {
    init: {
      src: SRC6,
      dst: DST6,
      srcPort: 22,
      dstPort: 50000,
      seq: seqAdd(0xfffffffe, 5),
      ack: 0x100000000, // Taken modulo 2^32: 0.
      flags: TCP_SYN | TCP_ACK,
      window: 28800,
      options: { mss: 1220, windowScale: 0 },
      hopLimit: 1,
    },
    options: [["MSS", 1220], ["NOP", null], ["WScale", 0]],
  },
  v4SynSackOnly: {
    init: {
      src: SRC4,
      dst: DST4,
      srcPort: 1,
      dstPort: 2,
      seq: 7,
      ack: 0,
      flags: TCP_SYN,
      window: 1024,
      options: { sackPermitted: true },
    },
    options: [["NOP", null], ["NOP", null], ["SAckOK", ""]],
  },
  v4Data: {
    init: {
      src: SRC4,
      dst: DST4,
      srcPort: 50000,
      dstPort: 22,
      seq: 0x7fffffff,
      ack: 0x80000000,
      flags: TCP_ACK | TCP_PSH,
      window: 2048,
      options: { timestamp: { value: 0xffffffff, echo: 0x12345678 } },
      payload: Uint8Array.from({ length: 1333 }, (_, i) => (i * 7) & 0xff),
    },
    options: [["NOP", null], ["NOP", null], ["Timestamp", [0xffffffff, 0x12345678]]],
  },
  v6Sack: {
    init: {
      src: SRC6,
      dst: DST6,
      srcPort: 80,
      dstPort: 8080,
      seq: 1000,
      ack: 2000,
      flags: TCP_ACK,
      window: 100,
      options: {
        timestamp: { value: 5, echo: 6 },
        sack: [[3000, 4000], [0xfffffff0, 0x20], [5000, 6000]],
      },
    },
    options: [
      ["NOP", null],
      ["NOP", null],
      ["Timestamp", [5, 6]],
      ["NOP", null],
      ["NOP", null],
      ["SAck", [3000, 4000, 0xfffffff0, 0x20, 5000, 6000]],
    ],
  },
  v6FinOdd: {
    init: {
      src: SRC6,
      dst: DST6,
      srcPort: 443,
      dstPort: 1,
      seq: 1,
      ack: 2,
      flags: TCP_FIN | TCP_ACK | TCP_URG | TCP_ECE | TCP_CWR,
      window: 0,
      urgent: 1,
      payload: Uint8Array.from([1, 2, 3]),
    },
    options: [],
  },
  v4Rst: {
    init: {
      src: SRC4,
      dst: DST4,
      srcPort: 1,
      dstPort: 2,
      seq: 0,
      ack: 0,
      flags: TCP_RST,
      window: 0,
    },
    options: [],
  },
};

/** Writes each of OURS_INIT, the payload of one of them received in place. */
function ours(): Record<string, Uint8Array> {
  const written: Record<string, Uint8Array> = {};
  for (const [name, { init }] of Object.entries(OURS_INIT)) {
    const headers = tcpHeadersLength(init.src, init.options);
    const out = scratch(headers + (init.payload?.length ?? 0));
    if (name === "v4Data") {
      out.set(init.payload!, headers);
      init.payload = out.subarray(headers);
    }
    assert.equal(writeTcpPacket(out, init), out.length, name);
    written[name] = out;
  }
  return written;
}

const OURS = ours();
let answer: Promise<ScapyAnswer> | undefined;
/** Scapy's answers for this file: one python process, started by the first test needing it. */
const scapy = () => answer ??= askScapy({ build: BUILD, dissect: OURS });

/** Parses IP then TCP; returns the segment or the code. */
function tcpOf(bytes: Uint8Array): TcpSegment | PacketError {
  const ip = parseIp(bytes);
  return isPacketError(ip) ? ip : parseTcp(ip);
}

/** Parses IP then TCP and asserts success. */
function parsed(bytes: Uint8Array): TcpSegment {
  const tcp = tcpOf(bytes);
  if (isPacketError(tcp)) assert.fail(`rejected: ${tcp}`);
  return tcp;
}

/** Scapy's option list in our struct's terms (unknown kinds, NOP, EOL dropped). */
function optionsFromScapy(list: unknown): TcpOptions {
  const options: TcpOptions = {};
  for (const [name, value] of list as Array<[string | number, unknown]>) {
    if (name === "MSS") options.mss = Number(value);
    if (name === "WScale") options.windowScale = Math.min(Number(value), 14);
    if (name === "SAckOK") options.sackPermitted = true;
    if (name === "Timestamp") {
      const [tsValue, echo] = value as number[];
      options.timestamp = { value: tsValue, echo };
    }
    if (name === "SAck") {
      const edges = value as number[];
      options.sack = [];
      for (let i = 0; i < edges.length; i += 2) options.sack.push([edges[i], edges[i + 1]]);
    }
  }
  return options;
}

Deno.test("tcp: scapy's SYN, SYN-ACK and data segments read exactly, options included", async () => {
  const { build } = await scapy();
  for (const name of Object.keys(BUILD) as Array<keyof typeof BUILD>) {
    const fields = layer(build[name], "TCP");
    const tcp = parsed(embed(build[name].bytes));
    assert.deepEqual(
      [tcp.srcPort, tcp.dstPort, tcp.seq, tcp.ack, tcp.headerLength, tcp.flags],
      [
        fields.sport,
        fields.dport,
        fields.seq,
        fields.ack,
        Number(fields.dataofs) * 4,
        fields.flags,
      ],
      name,
    );
    assert.deepEqual(
      [tcp.window, tcp.checksum, tcp.urgent],
      [fields.window, fields.chksum, fields.urgptr],
      name,
    );
    assert.deepEqual({ ...tcp.options }, optionsFromScapy(fields.options), name);
    const raw = build[name].layers.find((l) => l.layer === "Raw");
    assert.equal(toHex(tcp.payload), raw ? String(raw.fields.load) : "", name);
  }
});

Deno.test("tcp: option details: SYN values, clamped scale, unknown kinds skipped", async () => {
  const { build } = await scapy();
  const syn = parsed(build.v4Syn.bytes);
  assert.deepEqual({ ...syn.options }, {
    mss: 1460,
    sackPermitted: true,
    timestamp: { value: 123456789, echo: 0 },
    windowScale: 7,
  });
  assert.equal(syn.seq, 0xfffffff0);
  assert.equal(syn.flags, TCP_SYN);
  assert.equal(parsed(build.v6SynAck.bytes).ack, 0xfffffff1);
  assert.equal(parsed(build.v6SynAck.bytes).options.windowScale, 14);
  assert.equal(parsed(build.v4BigScale.bytes).options.windowScale, 14);
  assert.deepEqual({ ...parsed(build.v4Unknown.bytes).options }, { mss: 1000 });
  assert.deepEqual(parsed(build.v4Sack.bytes).options.sack, [[100, 200], [0xfffffff0, 0x10]]);
  assert.equal(parsed(build.v4AllFlags.bytes).flags, 0xff);
  assert.equal(parsed(build.v4Data.bytes).payload.length, 1001);
  assert.deepEqual({ ...parsed(build.v4AllFlags.bytes).options }, {});
});

Deno.test("tcp: scapy reads the segments we build: fields, options, valid checksums", async () => {
  const { dissect } = await scapy();
  for (const [name, { init, options }] of Object.entries(OURS_INIT)) {
    const packet = dissect[name];
    assert.deepEqual(badChecksums(packet), [], name);
    assert.ok(Object.keys(packet.checksums).some((key) => key.endsWith(":TCP")), name);
    const fields = layer(packet, "TCP");
    assert.deepEqual(
      [fields.sport, fields.dport, fields.seq, fields.ack, fields.flags, fields.window],
      [init.srcPort, init.dstPort, init.seq >>> 0, init.ack >>> 0, init.flags, init.window],
      name,
    );
    assert.equal(fields.urgptr, init.urgent ?? 0, name);
    assert.deepEqual(fields.options, options, name);
    const raw = packet.layers.find((l) => l.layer === "Raw");
    assert.equal(raw ? raw.fields.load : "", toHex(init.payload ?? new Uint8Array(0)), name);
    const network = layer(packet, init.src.length === 4 ? "IP" : "IPv6");
    assert.equal(init.src.length === 4 ? network.ttl : network.hlim, init.hopLimit ?? 64, name);
    // And our parser reads back what we wrote.
    const tcp = parsed(OURS[name]);
    assert.deepEqual(
      [tcp.seq, tcp.ack, tcp.flags, tcp.window],
      [init.seq >>> 0, init.ack >>> 0, init.flags, init.window],
    );
    assert.deepEqual({ ...tcp.options }, { ...init.options }, name);
  }
});

/**
 * Recomputes the TCP checksum of an IPv4 packet with an optionless IP header in place, the
 * slow, obvious way, so that a test's edit is what the parser sees.
 */
function resealTcpV4(bytes: Uint8Array): Uint8Array {
  bytes[36] = bytes[37] = 0;
  let sum = 6 + bytes.length - 20; // Pseudo-header: protocol and TCP length...
  for (let i = 12; i < 20; i += 2) sum += bytes[i] * 256 + bytes[i + 1]; // ...and addresses.
  for (let i = 20; i < bytes.length; i += 2) sum += bytes[i] * 256 + (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  bytes[36] = (0xffff - sum) >> 8;
  bytes[37] = (0xffff - sum) & 0xff;
  return bytes;
}

/** A copy of `bytes` changed by `edit`. */
function edited(bytes: Uint8Array, edit: (b: Uint8Array) => void): Uint8Array {
  const copy = bytes.slice();
  edit(copy);
  return copy;
}

Deno.test("tcp: malformed segments give error codes, never exceptions", async () => {
  const { build } = await scapy();
  const syn = build.v4Syn.bytes; // 20 + 20 + 20 bytes of options.
  const data = build.v4Data.bytes;
  const cases: Array<[string, Uint8Array, PacketError]> = [
    ["data offset 4", edited(syn, (b) => b[32] = 0x40), "bad-data-offset"],
    ["data offset 0", edited(syn, (b) => b[32] = 0x00), "bad-data-offset"],
    ["data offset 15 past a 40-byte segment", edited(syn, (b) => b[32] = 0xf0), "bad-data-offset"],
    [
      "segment of 19 bytes",
      resealIpv4(edited(syn.subarray(0, 39), (b) => b[3] = 39)),
      "truncated",
    ],
    ["payload bit flipped", edited(data, (b) => b[500] ^= 0x80), "bad-checksum"],
    ["sequence changed", edited(data, (b) => b[27] ^= 1), "bad-checksum"],
    ["option byte changed", edited(syn, (b) => b[43] ^= 1), "bad-checksum"],
    ["address changed", resealIpv4(edited(data, (b) => b[15] ^= 1)), "bad-checksum"],
  ];
  for (const [name, bytes, expected] of cases) {
    const ip = parseIp(embed(bytes));
    if (isPacketError(ip)) assert.fail(`${name}: IP rejected ${ip}`);
    assert.equal(parseTcp(ip), expected, name);
  }
  const udp = parseIp(resealIpv4(edited(data, (b) => b[9] = 17)));
  assert.ok(!isPacketError(udp));
  assert.equal(parseTcp(udp), "wrong-protocol");
  const fragment = parseIp(resealIpv4(edited(data, (b) => b[6] = 0x20)));
  assert.ok(!isPacketError(fragment));
  assert.equal(parseTcp(fragment), "fragment");
});

Deno.test("tcp: malformed options end option parsing, the segment still parses", () => {
  const parse = (bytes: number[]) => parseTcpOptions(Uint8Array.from(bytes), 0, bytes.length);
  assert.deepEqual({ ...parse([2, 4, 5, 0xb4]) }, { mss: 1460 });
  assert.deepEqual({ ...parse([2, 0, 5, 0xb4]) }, {}, "length 0");
  assert.deepEqual({ ...parse([1, 2, 1, 5, 0xb4]) }, {}, "length 1");
  assert.deepEqual({ ...parse([3, 3, 7, 2, 9, 5, 0xb4]) }, { windowScale: 7 }, "length past end");
  assert.deepEqual({ ...parse([1, 1, 1, 2]) }, {}, "kind without a length byte");
  assert.deepEqual(
    { ...parse([2, 6, 5, 0xb4, 0, 0, 3, 3, 2]) },
    { windowScale: 2 },
    "MSS length 6",
  );
  assert.deepEqual({ ...parse([8, 8, 0, 0, 0, 1, 0, 0, 4, 2]) }, { sackPermitted: true }, "TS 8");
  assert.deepEqual({ ...parse([5, 6, 0, 0, 0, 1, 4, 2]) }, { sackPermitted: true }, "SACK 6");
  assert.deepEqual({ ...parse([0, 2, 4, 5, 0xb4]) }, {}, "EOL first");
  assert.deepEqual({ ...parse([]) }, {});
  // A whole segment whose only option has a bad length still parses (checksum fixed up).
  const out = new Uint8Array(100);
  const length = writeTcpPacket(out, {
    src: SRC4,
    dst: DST4,
    srcPort: 1,
    dstPort: 2,
    seq: 3,
    ack: 4,
    flags: TCP_SYN,
    window: 5,
    options: { mss: 0x0102 },
  });
  out[40] = 0x0a; // Kind 10, length 4: unknown, skipped.
  const tcp = parsed(resealTcpV4(out.subarray(0, length)));
  assert.deepEqual({ ...tcp.options }, {});
});

Deno.test("tcp: writeTcpPacket throws RangeError on misuse", () => {
  const base: TcpPacketInit = {
    src: SRC4,
    dst: DST4,
    srcPort: 1,
    dstPort: 2,
    seq: 0,
    ack: 0,
    flags: TCP_ACK,
    window: 0,
  };
  const out = new Uint8Array(100);
  assert.throws(
    () => writeTcpPacket(out, { ...base, window: 65536 }),
    /65536 does not fit 16 bits/,
  );
  assert.throws(
    () => writeTcpPacket(out, { ...base, options: { windowScale: 15 } }),
    /outside 0-14/,
  );
  assert.throws(() => writeTcpPacket(out, { ...base, options: { mss: 70000 } }), /70000/);
  assert.throws(
    () =>
      writeTcpPacket(out, {
        ...base,
        options: { timestamp: { value: 1, echo: 2 }, sack: [[1, 2], [3, 4], [5, 6], [7, 8]] },
      }),
    /need 48 bytes; a header has room for 40/,
  );
  assert.throws(
    () => writeTcpPacket(new Uint8Array(39), base),
    /39 bytes cannot hold a 40-byte TCP packet/,
  );
  assert.equal(tcpHeadersLength(SRC6, { mss: 1 }), 64);
});

Deno.test("tcp: sequence comparisons wrap at 2^32", () => {
  assert.ok(seqLt(0xffffffff, 0));
  assert.ok(seqGt(0, 0xffffffff));
  assert.ok(seqLe(0xffffffff, 0) && seqLe(5, 5) && !seqLt(5, 5));
  assert.ok(seqGe(0, 0xfffffff0) && seqGe(5, 5) && !seqGt(5, 5));
  assert.equal(seqAdd(0xffffffff, 1), 0);
  assert.equal(seqAdd(0xfffffff0, 0x20), 0x10);
  assert.equal(seqAdd(0, -1), 0xffffffff);
  assert.equal(seqDiff(0, 0xffffffff), 1);
  assert.equal(seqDiff(0xffffffff, 0), -1);
  assert.equal(seqDiff(0x10, 0xfffffff0), 0x20);
  // Half the space apart: 0x7fffffff ahead is "after"; 0x80000001 ahead is "before".
  assert.ok(seqLt(0, 0x7fffffff));
  assert.ok(seqGt(0, 0x80000001));
  const random = prng(1982);
  for (let i = 0; i < 20000; i++) {
    const a = random(0x100000000);
    const distance = random(0x7fffffff) + 1; // 1 .. 2^31 - 1
    const b = seqAdd(a, distance);
    assert.ok(seqLt(a, b) && seqLe(a, b) && seqGt(b, a) && seqGe(b, a), `${a} + ${distance}`);
    assert.ok(!seqLt(b, a) && !seqGt(a, b) && !seqGe(a, b) && !seqLe(b, a));
    assert.equal(seqDiff(b, a), distance);
    assert.equal(seqDiff(a, b), -distance);
  }
});

Deno.test("tcp: a SYN written out byte by byte parses", () => {
  // 10.0.0.1:40000 -> 10.0.0.2:80 SYN with MSS 1460, checksums filled in below.
  const bytes = resealIpv4(
    fromHex(
      "4500002c0000400040060000" + "0a0000010a000002" +
        "9c400050" + "00000001" + "00000000" + "6002ffff" + "0000" + "0000" + "020405b4",
    ),
  );
  const ip = parseIp(bytes);
  assert.ok(!isPacketError(ip));
  const tcp = parsed(resealTcpV4(bytes));
  assert.deepEqual(
    [tcp.srcPort, tcp.dstPort, tcp.seq, tcp.flags, tcp.window, tcp.options.mss],
    [40000, 80, 1, TCP_SYN, 0xffff, 1460],
  );
});
