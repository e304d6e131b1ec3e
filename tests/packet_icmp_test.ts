/**
 * lib/packet/icmp.ts, icmp_unreachable.ts: scapy's ICMP/ICMPv6 echo messages read exactly;
 * echo replies and destination-unreachable errors we write (into a separate buffer and in
 * place) dissected by scapy with valid checksums; the RFC 1122 / 4443 suppression rules.
 */
import assert from "node:assert/strict";
import {
  type IcmpMessage,
  isPacketError,
  type PacketError,
  parseIcmp,
  parseIp,
  parseIpAddress,
  UNREACHABLE_V4,
  UNREACHABLE_V6,
  writeDestinationUnreachable,
  writeEchoReply,
} from "../lib/packet/mod.ts";
import { embed, scratch } from "./packet/bytes.ts";
import {
  badChecksums,
  layer,
  type ScapyAnswer,
  type ScapyBuilt,
  toHex,
  withScapy,
} from "./packet/scapy.ts";

const V4 = 'src="192.0.2.1", dst="198.51.100.7"';
const V6 = 'src="2001:db8::1", dst="2001:db8::2"';

const BUILD = {
  v4Request: `IP(${V4}, ttl=3)/ICMP(type=8, id=0x1234, seq=7)/b"ping payload!"`,
  v4Reply: `IP(${V4})/ICMP(type=0, id=0xffff, seq=65535)/Raw(bytes(range(56)))`,
  v4RequestWithOptions: `IP(${V4}, options=[IPOption_RR(routers=["0.0.0.0"])])` +
    `/ICMP(type=8, id=1, seq=2)/b"opt"`,
  v4Unreachable: `IP(${V4})/ICMP(type=3, code=3)/IP(src="198.51.100.7", dst="192.0.2.1")` +
    `/UDP(sport=1, dport=2)`,
  v6Request: `IPv6(${V6}, hlim=2)/ICMPv6EchoRequest(id=0xabcd, seq=1, data=b"ping6 payload")`,
  v6Reply: `IPv6(${V6})/ICMPv6EchoReply(id=2, seq=3, data=b"")`,
  v6RequestWithHopByHop:
    `IPv6(${V6})/IPv6ExtHdrHopByHop()/ICMPv6EchoRequest(id=5, seq=6, data=b"x")`,
  v4Udp: `IP(${V4}, options=[IPOption_NOP()] * 4)/UDP(sport=5000, dport=6000)/Raw(b"u" * 100)`,
  v6UdpBig: `IPv6(${V6})/UDP(sport=5000, dport=6000)/Raw(bytes(i % 251 for i in range(1400)))`,
  v6UdpSmall: `IPv6(${V6})/UDP(sport=5000, dport=6000)/b"small"`,
  v6UnreachableAbout: `IPv6(${V6})/ICMPv6DestUnreach(code=4)/IPv6(src="2001:db8::2")/UDP()`,
  v4Fragment: `IP(${V4}, frag=10, proto=17)/Raw(b"f" * 8)`,
  v4FirstFragment: `IP(${V4}, flags="MF")/UDP(sport=1, dport=2)/Raw(b"f" * 8)`,
  v4Multicast: `IP(src="192.0.2.1", dst="224.0.0.251")/UDP(sport=5353, dport=5353)`,
  v4Broadcast: `IP(src="192.0.2.1", dst="255.255.255.255")/UDP(sport=68, dport=67)`,
  v4FromZero: `IP(src="0.0.0.0", dst="192.0.2.1")/UDP(sport=68, dport=67)`,
  v6Multicast: `IPv6(src="2001:db8::1", dst="ff02::1")/UDP(sport=1, dport=2)`,
  v6FromUnspecified: `IPv6(src="::", dst="2001:db8::1")/UDP(sport=1, dport=2)`,
  v6FromMulticast: `IPv6(src="ff02::1", dst="2001:db8::1")/UDP(sport=1, dport=2)`,
};

type Name = keyof typeof BUILD;
let answer: Promise<ScapyAnswer> | undefined;
let ours: Record<string, Uint8Array> | undefined;

/**
 * Scapy's answers: one python process, asked twice: for the references, then about the
 * packets we write from them (replies need scapy's requests).
 */
function scapy(): Promise<ScapyAnswer> {
  answer ??= withScapy(async (ask) => {
    const first = await ask({ build: BUILD });
    ours = writeAll(first.build as Record<Name, ScapyBuilt>);
    const second = await ask({ dissect: ours });
    return { build: first.build, dissect: second.dissect };
  });
  return answer;
}

/** Our replies and errors, written from scapy's reference packets. */
function writeAll(build: Record<Name, ScapyBuilt>): Record<string, Uint8Array> {
  const written: Record<string, Uint8Array> = {};
  const reply = (name: Name, inPlace: boolean) => {
    const request = embed(build[name].bytes);
    const out = inPlace ? request : scratch(request.length);
    const length = writeEchoReply(request, out);
    if (isPacketError(length)) assert.fail(`${name}: ${length}`);
    written[`${name}${inPlace ? "InPlace" : ""}Reply`] = out.subarray(0, length);
  };
  for (const name of ["v4Request", "v6Request", "v4RequestWithOptions"] as const) {
    reply(name, false);
    reply(name, true);
  }
  reply("v6RequestWithHopByHop", false);
  const unreachable = (name: Name, code: number, inPlace: boolean) => {
    const offending = build[name].bytes;
    // In place: a receive buffer bigger than the packet, as a TUN read would leave it.
    const out = inPlace ? embed(new Uint8Array(1500)) : scratch(1280);
    if (inPlace) out.set(offending);
    const length = writeDestinationUnreachable(inPlace ? out : offending, out, { code });
    if (isPacketError(length)) assert.fail(`${name}: ${length}`);
    written[`${name}${inPlace ? "InPlace" : ""}Unreachable`] = out.subarray(0, length);
  };
  unreachable("v4Udp", UNREACHABLE_V4.port, false);
  unreachable("v4Udp", UNREACHABLE_V4.port, true);
  unreachable("v4Request", UNREACHABLE_V4.adminProhibited, false);
  unreachable("v4FirstFragment", UNREACHABLE_V4.host, false);
  unreachable("v6UdpBig", UNREACHABLE_V6.port, false);
  unreachable("v6UdpBig", UNREACHABLE_V6.port, true);
  unreachable("v6UdpSmall", UNREACHABLE_V6.adminProhibited, false);
  unreachable("v6Request", UNREACHABLE_V6.noRoute, false);
  return written;
}

/** Parses IP then ICMP; returns the message or the code. */
function icmpOf(bytes: Uint8Array): IcmpMessage | PacketError {
  const ip = parseIp(bytes);
  return isPacketError(ip) ? ip : parseIcmp(ip);
}

/** Parses IP then ICMP and asserts success. */
function parsed(bytes: Uint8Array): IcmpMessage {
  const message = icmpOf(bytes);
  if (isPacketError(message)) assert.fail(`rejected: ${message}`);
  return message;
}

Deno.test("icmp: scapy's ICMPv4 echo and unreachable messages read exactly", async () => {
  const { build } = await scapy();
  for (const name of ["v4Request", "v4Reply", "v4RequestWithOptions"] as const) {
    const fields = layer(build[name], "ICMP");
    const message = parsed(embed(build[name].bytes));
    assert.deepEqual(
      [message.type, message.code, message.checksum, message.identifier, message.sequence],
      [fields.type, fields.code, fields.chksum, fields.id, fields.seq],
      name,
    );
    assert.equal(toHex(message.data), String(layer(build[name], "Raw").load), name);
    assert.equal(message.echo, fields.type === 8 ? "request" : "reply", name);
  }
  const unreachable = parsed(build.v4Unreachable.bytes);
  assert.deepEqual([unreachable.type, unreachable.code, unreachable.echo], [3, 3, null]);
  assert.equal(unreachable.data.length, 28);
});

Deno.test("icmp: scapy's ICMPv6 echo messages read exactly, pseudo-header included", async () => {
  const { build } = await scapy();
  const cases = [
    ["v6Request", "ICMPv6EchoRequest", "request"],
    ["v6Reply", "ICMPv6EchoReply", "reply"],
    ["v6RequestWithHopByHop", "ICMPv6EchoRequest", "request"],
  ] as const;
  for (const [name, scapyLayer, echo] of cases) {
    const fields = layer(build[name], scapyLayer);
    const message = parsed(embed(build[name].bytes));
    assert.deepEqual(
      [message.type, message.code, message.checksum, message.identifier, message.sequence],
      [fields.type, fields.code, fields.cksum, fields.id, fields.seq],
      name,
    );
    assert.equal(toHex(message.data), fields.data, name);
    assert.equal(message.echo, echo, name);
  }
  const unreachable = parsed(build.v6UnreachableAbout.bytes);
  assert.deepEqual([unreachable.type, unreachable.code, unreachable.echo], [1, 4, null]);
});

Deno.test("icmp: echo replies we write, in place or not, are what scapy expects", async () => {
  const { build, dissect } = await scapy();
  const cases = [
    ["v4Request", "IP", "ICMP", 0],
    ["v4RequestWithOptions", "IP", "ICMP", 0],
    ["v6Request", "IPv6", "ICMPv6EchoReply", 129],
    ["v6RequestWithHopByHop", "IPv6", "ICMPv6EchoReply", 129],
  ] as const;
  for (const [name, network, transport, type] of cases) {
    const request = build[name];
    const requestIp = layer(request, network);
    const requestIcmp = layer(request, network === "IP" ? "ICMP" : "ICMPv6EchoRequest");
    const variants = name.endsWith("HopByHop") ? [""] : ["", "InPlace"];
    for (const variant of variants) {
      const key = `${name}${variant}Reply`;
      const reply = dissect[key];
      assert.deepEqual(badChecksums(reply), [], key);
      assert.equal(Object.keys(reply.checksums).length, network === "IP" ? 2 : 1, key);
      const ip = layer(reply, network);
      assert.deepEqual([ip.src, ip.dst], [requestIp.dst, requestIp.src], key);
      assert.equal(network === "IP" ? ip.ttl : ip.hlim, 64, key);
      if (network === "IP") assert.equal(ip.ihl, 5, `${key}: options dropped`);
      else assert.equal(ip.nh, 58, `${key}: extension headers dropped`);
      const icmp = layer(reply, transport);
      assert.deepEqual(
        [icmp.type, icmp.code, icmp.id, icmp.seq],
        [type, 0, requestIcmp.id, requestIcmp.seq],
        key,
      );
      const data = network === "IP" ? layer(reply, "Raw").load : icmp.data;
      const sent = network === "IP" ? layer(request, "Raw").load : requestIcmp.data;
      assert.equal(data, sent, key);
      assert.equal(parsed(ours![key]).echo, "reply", key);
    }
  }
});

Deno.test("icmp: only valid echo requests get replies", async () => {
  const { build } = await scapy();
  const out = new Uint8Array(1500);
  assert.equal(writeEchoReply(build.v4Reply.bytes, out), "not-echo-request");
  assert.equal(writeEchoReply(build.v6Reply.bytes, out), "not-echo-request");
  assert.equal(writeEchoReply(build.v4Unreachable.bytes, out), "not-echo-request");
  assert.equal(writeEchoReply(build.v4Udp.bytes, out), "wrong-protocol");
  const corrupted = build.v6Request.bytes.slice();
  corrupted[corrupted.length - 1] ^= 1;
  assert.equal(writeEchoReply(corrupted, out), "bad-checksum");
  // An ICMPv4 echo inside IPv6 (next header 1) is not ICMPv6.
  const wrongVersion = build.v6Request.bytes.slice();
  wrongVersion[6] = 1;
  assert.equal(writeEchoReply(wrongVersion, out), "wrong-protocol");
  const short = build.v6Request.bytes.slice(0, 47);
  short[5] = 7;
  assert.equal(writeEchoReply(short, out), "truncated");
  assert.equal(writeEchoReply(new Uint8Array(3), out), "bad-version");
  assert.throws(
    () => writeEchoReply(build.v4Request.bytes, new Uint8Array(40)),
    /40 bytes cannot hold/,
  );
});

Deno.test("icmp: destination unreachable quotes header + 8 bytes (IPv4)", async () => {
  const { build, dissect } = await scapy();
  for (const key of ["v4UdpUnreachable", "v4UdpInPlaceUnreachable"]) {
    const offending = build.v4Udp.bytes;
    const error = dissect[key];
    assert.deepEqual(badChecksums(error), [], key);
    assert.deepEqual([layer(error, "IP").src, layer(error, "IP").dst], [
      "198.51.100.7",
      "192.0.2.1",
    ]);
    const icmp = layer(error, "ICMP");
    assert.deepEqual([icmp.type, icmp.code], [3, 3], key);
    // 24-byte header (four NOP options) + 8 bytes of UDP header.
    assert.equal(ours![key].length, 20 + 8 + 32, key);
    assert.equal(toHex(ours![key].subarray(28)), toHex(offending.subarray(0, 32)), key);
    const quoted = layer(error, "UDPerror");
    assert.deepEqual([quoted.sport, quoted.dport], [5000, 6000], key);
  }
  const aboutEcho = dissect.v4RequestUnreachable;
  assert.deepEqual(badChecksums(aboutEcho), []);
  assert.equal(layer(aboutEcho, "ICMP").code, 13);
  assert.equal(layer(dissect.v4FirstFragmentUnreachable, "ICMP").code, 1);
});

Deno.test("icmp: ICMPv6 destination unreachable quotes as much as fits in 1280 bytes", async () => {
  const { build, dissect } = await scapy();
  for (const key of ["v6UdpBigUnreachable", "v6UdpBigInPlaceUnreachable"]) {
    const error = dissect[key];
    assert.deepEqual(badChecksums(error), [], key);
    assert.equal(ours![key].length, 1280, key);
    const icmp = layer(error, "ICMPv6DestUnreach");
    assert.deepEqual([icmp.type, icmp.code], [1, 4], key);
    assert.deepEqual([layer(error, "IPv6").src, layer(error, "IPv6").dst], [
      "2001:db8::2",
      "2001:db8::1",
    ]);
    assert.equal(
      toHex(ours![key].subarray(48)),
      toHex(build.v6UdpBig.bytes.subarray(0, 1232)),
      key,
    );
  }
  const small = ours!.v6UdpSmallUnreachable;
  assert.equal(small.length, 48 + build.v6UdpSmall.bytes.length);
  assert.deepEqual(badChecksums(dissect.v6UdpSmallUnreachable), []);
  assert.equal(layer(dissect.v6UdpSmallUnreachable, "ICMPv6DestUnreach").code, 1);
  assert.deepEqual(badChecksums(dissect.v6RequestUnreachable), []);
  assert.equal(parsed(small).type, 1);
});

Deno.test("icmp: no error about errors, later fragments, multicast or broadcast (RFC 1122)", async () => {
  const { build } = await scapy();
  const out = new Uint8Array(1500);
  const suppressed: Name[] = [
    "v4Unreachable",
    "v6UnreachableAbout",
    "v4Fragment",
    "v4Multicast",
    "v4Broadcast",
    "v4FromZero",
    "v6Multicast",
    "v6FromUnspecified",
    "v6FromMulticast",
  ];
  for (const name of suppressed) {
    assert.equal(
      writeDestinationUnreachable(build[name].bytes, out, { code: 3 }),
      "error-suppressed",
      name,
    );
  }
  assert.equal(writeDestinationUnreachable(new Uint8Array(20), out, { code: 3 }), "bad-version");
});

Deno.test("icmp: destination unreachable from a chosen source; misuse throws", async () => {
  const { build } = await scapy();
  const out = new Uint8Array(1500);
  const router = parseIpAddress("10.0.0.254");
  const length = writeDestinationUnreachable(build.v4Udp.bytes, out, {
    code: UNREACHABLE_V4.host,
    src: router,
    hopLimit: 9,
  });
  assert.equal(length, 60);
  const ip = parseIp(out.subarray(0, 60));
  assert.ok(!isPacketError(ip));
  assert.deepEqual([Array.from(ip.src), ip.hopLimit], [[10, 0, 0, 254], 9]);
  assert.equal(parsed(out.subarray(0, 60)).code, 1);
  assert.throws(
    () =>
      writeDestinationUnreachable(build.v4Udp.bytes, out, { code: 1, src: parseIpAddress("::1") }),
    /16 bytes for an IPv4 packet/,
  );
  assert.throws(
    () => writeDestinationUnreachable(build.v6UdpBig.bytes, new Uint8Array(1279), { code: 4 }),
    /1279 bytes cannot hold a 1280-byte ICMP error/,
  );
});
