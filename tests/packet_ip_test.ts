/**
 * lib/packet/ipv4.ts, ipv6.ts, ip.ts, address.ts: scapy builds reference IPv4/IPv6 packets
 * (options, fragments, extension-header chains) that parseIp must read field for field, and
 * dissects headers we write; malformed headers yield error codes, never exceptions.
 */
import assert from "node:assert/strict";
import {
  formatIpAddress,
  ipAddressEquals,
  type IpPacket,
  isPacketError,
  PACKET_ERRORS,
  type PacketError,
  parseIp,
  parseIpAddress,
  parseIpv4,
  parseIpv6,
  writeIpHeader,
  writeIpv4Header,
  writeIpv6Header,
} from "../lib/packet/mod.ts";
import { embed, resealIpv4, scratch } from "./packet/bytes.ts";
import { askScapy, badChecksums, layer, type ScapyAnswer } from "./packet/scapy.ts";

const V4 = 'src="192.0.2.1", dst="198.51.100.7"';
const V6 = 'src="2001:db8::1", dst="2001:db8:ffff::2"';

/** Reference packets scapy builds (and then reads back, so computed fields are filled in). */
const BUILD = {
  v4Udp: `IP(${V4}, ttl=17, id=0x1234, flags="DF", tos=0xb8)/UDP(sport=5353, dport=53)/b"hello"`,
  v4Options: `IP(${V4}, options=[IPOption_RR(routers=["10.1.2.3", "10.4.5.6"])])/ICMP()/b"x"`,
  v4Fragment: `IP(${V4}, flags="MF", frag=185, id=7, proto=17)/Raw(b"f" * 16)`,
  v4LastFragment: `IP(${V4}, frag=3, id=7, proto=17)/Raw(b"g" * 8)`,
  v6Udp: `IPv6(${V6}, hlim=9, tc=0x2e, fl=0xabcde)/UDP(sport=1, dport=2)/b"payload"`,
  v6Chain: `IPv6(${V6})/IPv6ExtHdrHopByHop()/IPv6ExtHdrDestOpt()` +
    `/IPv6ExtHdrRouting(addresses=["2001:db8::3"], segleft=0)/IPv6ExtHdrFragment(offset=0, m=0, id=9)` +
    `/TCP(sport=80, dport=81)/b"data"`,
  v6Fragment: `IPv6(${V6})/IPv6ExtHdrFragment(nh=17, offset=100, m=1, id=0xdeadbeef)` +
    `/Raw(b"y" * 24)`,
  v6FirstFragment: `IPv6(${V6})/IPv6ExtHdrDestOpt()/IPv6ExtHdrFragment(offset=0, m=1, id=3)` +
    `/UDP(sport=7, dport=8)/Raw(b"z" * 40)`,
  v6NoNextHeader: `IPv6(${V6}, nh=59)`,
};

/** Headers we write, around an opaque payload of protocol 253 (RFC 3692 experimentation). */
function ourHeaders(): Record<string, Uint8Array> {
  const payload = new TextEncoder().encode("opaque payload");
  const v4 = scratch(20 + payload.length);
  writeIpv4Header(v4, {
    src: parseIpAddress("10.0.0.1"),
    dst: parseIpAddress("10.255.0.9"),
    protocol: 253,
    payloadLength: payload.length,
    hopLimit: 33,
    tos: 0x10,
    identification: 0xbeef,
    dontFragment: false,
  });
  v4.set(payload, 20);
  const v6 = scratch(40 + payload.length);
  writeIpv6Header(v6, {
    src: parseIpAddress("fd00::1"),
    dst: parseIpAddress("fd00::abcd:2"),
    protocol: 253,
    payloadLength: payload.length,
    hopLimit: 2,
    trafficClass: 0xa1,
    flowLabel: 0x12345,
  });
  v6.set(payload, 40);
  const dispatched = scratch(40);
  writeIpHeader(dispatched, {
    src: parseIpAddress("2001:db8::a"),
    dst: parseIpAddress("2001:db8::b"),
    protocol: 59,
    payloadLength: 0,
  });
  return { v4, v6, dispatched };
}

let answer: Promise<ScapyAnswer> | undefined;
const OURS = ourHeaders();
/** Scapy's answers for this file: one python process, started by the first test needing it. */
const scapy = () => answer ??= askScapy({ build: BUILD, dissect: OURS });

/** Parses and asserts success, saying which error came back otherwise. */
function parsed(bytes: Uint8Array): IpPacket {
  const ip = parseIp(bytes);
  if (isPacketError(ip)) assert.fail(`parseIp rejected the packet: ${ip}`);
  return ip;
}

/** Asserts an address view holds the address scapy printed. */
function assertAddress(actual: Uint8Array, scapyText: unknown) {
  assert.ok(
    ipAddressEquals(actual, parseIpAddress(String(scapyText))),
    `${formatIpAddress(actual)} != ${scapyText}`,
  );
}

/** Asserts the IPv4 fields parseIp read equal scapy's IP layer. */
function assertIpv4Matches(ip: IpPacket, fields: Record<string, unknown>) {
  assert.equal(ip.version, 4);
  if (ip.version !== 4) return;
  assert.equal(ip.headerLength, Number(fields.ihl) * 4);
  assert.equal(ip.tos, fields.tos);
  assert.equal(ip.packetLength, fields.len);
  assert.equal(ip.identification, fields.id);
  assert.equal(ip.dontFragment, (Number(fields.flags) & 2) !== 0);
  assert.equal(ip.moreFragments, (Number(fields.flags) & 1) !== 0);
  assert.equal(ip.fragmentOffset, Number(fields.frag) * 8);
  assert.equal(ip.hopLimit, fields.ttl);
  assert.equal(ip.protocol, fields.proto);
  assert.equal(ip.checksum, fields.chksum);
  assertAddress(ip.src, fields.src);
  assertAddress(ip.dst, fields.dst);
  assert.equal(ip.payloadOffset, ip.headerLength);
  assert.equal(ip.payloadLength, ip.packetLength - ip.headerLength);
}

Deno.test("ip: IPv4 from scapy: every header field, DF, options (IHL 8)", async () => {
  const { build } = await scapy();
  for (const name of ["v4Udp", "v4Options"] as const) {
    const ip = parsed(embed(build[name].bytes));
    assertIpv4Matches(ip, layer(build[name], "IP"));
    assert.equal(ip.fragment, false, name);
  }
  const withOptions = parsed(build.v4Options.bytes);
  // Record route with two slots: 3 + 8 bytes, padded to 12.
  assert.equal(withOptions.payloadOffset, 32);
  assert.equal(withOptions.protocol, 1);
});

Deno.test("ip: IPv4 fragments from scapy are reported, with offset in bytes", async () => {
  const { build } = await scapy();
  const first = parsed(build.v4Fragment.bytes);
  assertIpv4Matches(first, layer(build.v4Fragment, "IP"));
  assert.deepEqual(
    [first.fragment, first.moreFragments, first.fragmentOffset, first.identification],
    [true, true, 1480, 7],
  );
  const last = parsed(build.v4LastFragment.bytes);
  assertIpv4Matches(last, layer(build.v4LastFragment, "IP"));
  assert.deepEqual([last.fragment, last.moreFragments, last.fragmentOffset], [true, false, 24]);
});

Deno.test("ip: IPv6 from scapy: fixed header fields", async () => {
  const { build } = await scapy();
  const fields = layer(build.v6Udp, "IPv6");
  const ip = parsed(embed(build.v6Udp.bytes));
  assert.equal(ip.version, 6);
  if (ip.version !== 6) return;
  assert.equal(ip.trafficClass, fields.tc);
  assert.equal(ip.flowLabel, fields.fl);
  assert.equal(ip.packetLength, 40 + Number(fields.plen));
  assert.equal(ip.nextHeader, fields.nh);
  assert.equal(ip.protocol, 17);
  assert.equal(ip.hopLimit, fields.hlim);
  assertAddress(ip.src, fields.src);
  assertAddress(ip.dst, fields.dst);
  assert.deepEqual([ip.payloadOffset, ip.payloadLength, ip.fragment], [40, 15, false]);
});

Deno.test("ip: IPv6 hop-by-hop, dest-opts, routing, atomic fragment walked to TCP", async () => {
  const { build } = await scapy();
  const ip = parsed(embed(build.v6Chain.bytes));
  assert.equal(ip.version, 6);
  assert.equal(ip.protocol, 6);
  // 40 fixed + 8 hop-by-hop + 8 dest-opts + 24 routing (one address) + 8 fragment.
  assert.equal(ip.payloadOffset, 88);
  assert.equal(ip.payloadLength, 20 + 4);
  assert.equal(ip.fragment, false);
  assert.equal(ip.identification, layer(build.v6Chain, "IPv6ExtHdrFragment").id);
  assert.equal(ip.packetLength, build.v6Chain.bytes.length);
});

Deno.test("ip: IPv6 fragments from scapy stop the walk and are reported", async () => {
  const { build } = await scapy();
  const later = parsed(build.v6Fragment.bytes);
  const header = layer(build.v6Fragment, "IPv6ExtHdrFragment");
  assert.deepEqual(
    [later.fragment, later.moreFragments, later.fragmentOffset, later.identification],
    [true, true, Number(header.offset) * 8, 0xdeadbeef],
  );
  assert.deepEqual([later.protocol, later.payloadOffset, later.payloadLength], [17, 48, 24]);
  const first = parsed(build.v6FirstFragment.bytes);
  assert.deepEqual([first.fragment, first.fragmentOffset, first.identification], [true, 0, 3]);
  assert.deepEqual([first.protocol, first.payloadOffset], [17, 56]);
});

Deno.test("ip: IPv6 with no next header (59) has an empty payload", async () => {
  const { build } = await scapy();
  const ip = parsed(build.v6NoNextHeader.bytes);
  assert.deepEqual([ip.protocol, ip.payloadOffset, ip.payloadLength], [59, 40, 0]);
});

Deno.test("ip: headers we write are read back by scapy with valid IPv4 checksums", async () => {
  const { dissect } = await scapy();
  const v4 = layer(dissect.v4, "IP");
  assert.deepEqual(
    [v4.version, v4.ihl, v4.tos, v4.len, v4.id, v4.flags, v4.frag, v4.ttl, v4.proto],
    [4, 5, 0x10, 34, 0xbeef, 0, 0, 33, 253],
  );
  assert.deepEqual([v4.src, v4.dst], ["10.0.0.1", "10.255.0.9"]);
  assert.deepEqual(badChecksums(dissect.v4), []);
  assert.equal(Object.keys(dissect.v4.checksums).length, 1);
  const v6 = layer(dissect.v6, "IPv6");
  assert.deepEqual(
    [v6.version, v6.tc, v6.fl, v6.plen, v6.nh, v6.hlim, v6.src, v6.dst],
    [6, 0xa1, 0x12345, 14, 253, 2, "fd00::1", "fd00::abcd:2"],
  );
  const dispatched = layer(dissect.dispatched, "IPv6");
  assert.deepEqual([dispatched.plen, dispatched.nh, dispatched.hlim], [0, 59, 64]);
});

Deno.test("ip: our headers parse back, and DF defaults on", () => {
  const v4 = parsed(OURS.v4);
  assert.deepEqual([v4.version, v4.hopLimit, v4.identification, v4.protocol], [4, 33, 0xbeef, 253]);
  const defaults = scratch(20);
  writeIpHeader(defaults, {
    src: parseIpAddress("1.1.1.1"),
    dst: parseIpAddress("2.2.2.2"),
    protocol: 6,
    payloadLength: 0,
  });
  const ip = parsed(defaults);
  assert.ok(ip.version === 4 && ip.dontFragment && ip.hopLimit === 64);
});

Deno.test("ip: writing addresses swapped in place, over the very bytes read", () => {
  const packet = OURS.v6.slice();
  const ip = parsed(packet);
  writeIpHeader(packet, { src: ip.dst, dst: ip.src, protocol: 253, payloadLength: 14 });
  const swapped = parsed(packet);
  assert.equal(formatIpAddress(swapped.src), "fd00::abcd:2");
  assert.equal(formatIpAddress(swapped.dst), "fd00::1");
});

Deno.test("ip: trailing bytes past the total length are ignored", () => {
  const padded = new Uint8Array(OURS.v4.length + 6);
  padded.set(OURS.v4);
  const ip = parsed(padded);
  assert.equal(ip.packetLength, OURS.v4.length);
  assert.equal(ip.payloadLength, OURS.v4.length - 20);
});

/** A copy of `bytes` changed by `edit`. */
function edited(bytes: Uint8Array, edit: (b: Uint8Array) => void): Uint8Array {
  const copy = bytes.slice();
  edit(copy);
  return copy;
}

Deno.test("ip: malformed headers give error codes, never exceptions", async () => {
  const { build } = await scapy();
  const v4 = OURS.v4;
  const v6 = build.v6Chain.bytes;
  const cases: Array<[string, Uint8Array, PacketError]> = [
    ["empty", new Uint8Array(0), "truncated"],
    ["19-byte IPv4", v4.subarray(0, 19), "truncated"],
    ["39-byte IPv6", v6.subarray(0, 39), "truncated"],
    ["version 5", edited(v4, (b) => b[0] = 0x55), "bad-version"],
    ["version 0", new Uint8Array(40), "bad-version"],
    ["IHL 4", edited(v4, (b) => (b[0] = 0x44, resealIpv4(b))), "bad-header-length"],
    ["IHL 15 past the packet", edited(v4, (b) => b[0] = 0x4f), "bad-header-length"],
    ["total length > buffer", edited(v4, (b) => (b[3] += 1, resealIpv4(b))), "bad-length"],
    [
      "total length < header",
      edited(v4, (b) => (b[2] = 0, b[3] = 19, resealIpv4(b))),
      "bad-length",
    ],
    ["bad IPv4 checksum", edited(v4, (b) => b[11] ^= 0x40), "bad-checksum"],
    ["flipped address bit", edited(v4, (b) => b[13] ^= 1), "bad-checksum"],
    ["IPv6 payload length > buffer", v6.subarray(0, v6.length - 1), "bad-length"],
    // Cut the payload length so the chain ends inside the routing header.
    ["chain runs off the end", edited(v6, (b) => (b[4] = 0, b[5] = 30)), "bad-extension-header"],
    ["hop-by-hop length past the end", edited(v6, (b) => b[41] = 200), "bad-extension-header"],
    ["chain ends at a header", edited(v6, (b) => (b[4] = 0, b[5] = 16)), "bad-extension-header"],
    ["fragment header cut short", edited(v6, (b) => (b[4] = 0, b[5] = 44)), "bad-extension-header"],
    ["hop-by-hop not first", edited(v6, (b) => b[40] = 0), "bad-extension-header"],
    ["routing with segments left", edited(v6, (b) => b[59] = 1), "bad-extension-header"],
    [
      "jumbogram (payload length 0)",
      edited(v6, (b) => (b[4] = 0, b[5] = 0)),
      "bad-extension-header",
    ],
  ];
  for (const [name, bytes, expected] of cases) {
    assert.equal(parseIp(embed(bytes)), expected, name);
  }
  assert.equal(parseIpv4(v6), "bad-version");
  assert.equal(parseIpv6(Uint8Array.of(0x45, ...new Array(39).fill(0))), "bad-version");
  for (const [, , code] of cases) assert.ok(PACKET_ERRORS.includes(code));
});

Deno.test("ip: writers throw RangeError on misuse, naming the problem", () => {
  const four = parseIpAddress("10.0.0.1");
  const sixteen = parseIpAddress("::1");
  const out = new Uint8Array(100);
  assert.throws(
    () =>
      writeIpHeader(out, { src: four.subarray(0, 3), dst: four, protocol: 6, payloadLength: 0 }),
    /4 or 16 bytes, got 3/,
  );
  assert.throws(
    () => writeIpHeader(out, { src: four, dst: sixteen, protocol: 6, payloadLength: 0 }),
    /4-byte addresses, got 4 and 16/,
  );
  assert.throws(
    () => writeIpHeader(out, { src: four, dst: four, protocol: 6, payloadLength: 65516 }),
    /65536 bytes exceeds/,
  );
  assert.throws(
    () => writeIpHeader(out, { src: sixteen, dst: sixteen, protocol: 6, payloadLength: 65536 }),
    /65536 bytes exceeds 65535/,
  );
  assert.throws(
    () =>
      writeIpHeader(out.subarray(0, 39), {
        src: sixteen,
        dst: sixteen,
        protocol: 6,
        payloadLength: 0,
      }),
    /39 bytes cannot hold an IPv6 header/,
  );
});

Deno.test("address: text to bytes and back", () => {
  const cases: Array<[string, number[]]> = [
    ["192.0.2.1", [192, 0, 2, 1]],
    ["0.0.0.0", [0, 0, 0, 0]],
    ["2001:db8::1", [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ["::", new Array(16).fill(0)],
    ["::ffff:1.2.3.4", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]],
  ];
  for (const [text, bytes] of cases) {
    assert.deepEqual(Array.from(parseIpAddress(text)), bytes, text);
    assert.equal(formatIpAddress(Uint8Array.from(bytes)), text);
  }
  // RFC 5952: lower case, longest zero run compressed, the first of equal runs.
  assert.equal(formatIpAddress(parseIpAddress("2001:DB8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
  assert.equal(formatIpAddress(parseIpAddress("2001:db8:0:1:0:1:0:1")), "2001:db8:0:1:0:1:0:1");
  for (const bad of ["127.1", "010.0.0.1", "1.2.3.256", "fe80::1%eth0", "", "example.com"]) {
    assert.throws(() => parseIpAddress(bad), new RegExp(`invalid IP address "${bad}"`));
  }
  assert.throws(() => formatIpAddress(new Uint8Array(5)), /4 or 16 bytes, got 5/);
  assert.ok(ipAddressEquals(parseIpAddress("::1"), parseIpAddress("0::0:1")));
  assert.ok(!ipAddressEquals(parseIpAddress("::1"), parseIpAddress("::2")));
  assert.ok(!ipAddressEquals(parseIpAddress("0.0.0.1"), parseIpAddress("::1")));
});
