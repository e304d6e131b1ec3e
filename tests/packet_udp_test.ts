/**
 * lib/packet/udp.ts: scapy-built UDP over IPv4/IPv6 read field for field (checksums included),
 * UDP packets we build dissected by scapy with checksums it agrees with, and malformed
 * datagrams rejected with codes.
 */
import assert from "node:assert/strict";
import {
  isPacketError,
  type PacketError,
  parseIp,
  parseIpAddress,
  parseUdp,
  type UdpDatagram,
  udpHeadersLength,
  writeUdpPacket,
} from "../lib/packet/mod.ts";
import { embed, resealIpv4, scratch } from "./packet/bytes.ts";
import { askScapy, badChecksums, fromHex, layer, type ScapyAnswer, toHex } from "./packet/scapy.ts";

const V4 = 'src="192.0.2.1", dst="198.51.100.7"';
const V6 = 'src="2001:db8::1", dst="2001:db8::2"';
const SRC4 = parseIpAddress("10.10.0.1");
const DST4 = parseIpAddress("10.10.0.2");
const SRC6 = parseIpAddress("fd12:3456::1");
const DST6 = parseIpAddress("fd12:3456::2");

const BUILD = {
  v4: `IP(${V4})/UDP(sport=5353, dport=53)/b"hello, world"`,
  v4Odd: `IP(${V4})/UDP(sport=1, dport=65535)/b"odd"`,
  v4Empty: `IP(${V4})/UDP(sport=40000, dport=9)`,
  v4NoChecksum: `IP(${V4})/UDP(sport=1, dport=2, chksum=0)/b"none"`,
  v6: `IPv6(${V6})/UDP(sport=443, dport=50000)/Raw(bytes(range(200)))`,
  v6Chain: `IPv6(${V6})/IPv6ExtHdrHopByHop()/IPv6ExtHdrDestOpt()/UDP(sport=3, dport=4)/b"ext"`,
  v6ZeroChecksum: `IPv6(${V6})/UDP(sport=1, dport=2, chksum=0)/b"zero"`,
};

/** A payload whose UDP checksum over SRC4 → DST4 computes to zero, so 0xffff must be sent. */
function zeroChecksumPayload(): Uint8Array {
  const payload = Uint8Array.from([1, 2, 3, 4, 0, 0]);
  const out = new Uint8Array(100);
  writeUdpPacket(out, { src: SRC4, dst: DST4, srcPort: 7, dstPort: 7, payload });
  // Adding the checksum's own value as a word makes the sum 0xffff, its complement 0.
  payload[4] = out[26];
  payload[5] = out[27];
  return payload;
}

/** UDP packets we build, for scapy to dissect. */
function ours(): Record<string, Uint8Array> {
  const build = (src: Uint8Array, dst: Uint8Array, payload: Uint8Array, ports = [1234, 53]) => {
    const out = scratch(udpHeadersLength(src) + payload.length);
    const length = writeUdpPacket(out, {
      src,
      dst,
      srcPort: ports[0],
      dstPort: ports[1],
      payload,
      hopLimit: 5,
    });
    assert.equal(length, out.length);
    return out;
  };
  const text = new TextEncoder().encode("a datagram of some length!");
  const big = Uint8Array.from({ length: 1400 }, (_, i) => (i * 31) & 0xff);
  // A payload received straight into the packet buffer: not copied, still checksummed.
  const inPlace = scratch(48 + 5);
  inPlace.set([9, 8, 7, 6, 5], 48);
  writeUdpPacket(inPlace, {
    src: SRC6,
    dst: DST6,
    srcPort: 1,
    dstPort: 2,
    payload: inPlace.subarray(48),
    hopLimit: 5,
  });
  return {
    v4: build(SRC4, DST4, text),
    v4Odd: build(SRC4, DST4, text.subarray(0, 7), [65535, 0]),
    v4Empty: build(SRC4, DST4, new Uint8Array(0)),
    v4ZeroSum: build(SRC4, DST4, zeroChecksumPayload(), [7, 7]),
    v6: build(SRC6, DST6, text),
    v6Big: build(SRC6, DST6, big),
    v6InPlace: inPlace,
  };
}

const OURS = ours();
let answer: Promise<ScapyAnswer> | undefined;
/** Scapy's answers for this file: one python process, started by the first test needing it. */
const scapy = () => answer ??= askScapy({ build: BUILD, dissect: OURS });

/** Parses IP then UDP; returns the datagram or the code. */
function udpOf(bytes: Uint8Array): UdpDatagram | PacketError {
  const ip = parseIp(bytes);
  return isPacketError(ip) ? ip : parseUdp(ip);
}

/** Parses IP then UDP and asserts success. */
function parsed(bytes: Uint8Array): UdpDatagram {
  const udp = udpOf(bytes);
  if (isPacketError(udp)) assert.fail(`rejected: ${udp}`);
  return udp;
}

Deno.test("udp: scapy's datagrams over IPv4 and IPv6 read exactly, checksums verified", async () => {
  const { build } = await scapy();
  for (const name of ["v4", "v4Odd", "v4Empty", "v4NoChecksum", "v6", "v6Chain"] as const) {
    const fields = layer(build[name], "UDP");
    const udp = parsed(embed(build[name].bytes));
    assert.equal(udp.srcPort, fields.sport, name);
    assert.equal(udp.dstPort, fields.dport, name);
    assert.equal(udp.length, fields.len, name);
    assert.equal(udp.checksum, fields.chksum, name);
    const raw = build[name].layers.find((l) => l.layer === "Raw");
    assert.equal(toHex(udp.payload), raw ? String(raw.fields.load) : "", name);
  }
  assert.equal(parsed(build.v4NoChecksum.bytes).checksum, 0);
});

Deno.test("udp: a zero checksum is 'none' over IPv4 but rejected over IPv6", async () => {
  const { build } = await scapy();
  assert.equal(udpOf(build.v6ZeroChecksum.bytes), "missing-checksum");
  // Over IPv4 zero skips verification, so even a corrupted payload passes.
  const corrupted = build.v4NoChecksum.bytes.slice();
  corrupted[corrupted.length - 1] ^= 0xff;
  assert.equal(parsed(corrupted).checksum, 0);
});

Deno.test("udp: scapy reads the packets we build, with the same fields and checksums", async () => {
  const { dissect } = await scapy();
  for (const [name, bytes] of Object.entries(OURS)) {
    const packet = dissect[name];
    assert.deepEqual(badChecksums(packet), [], name);
    const checksummed = Object.keys(packet.checksums);
    assert.ok(checksummed.some((key) => key.endsWith(":UDP")), `${name}: ${checksummed}`);
    const fields = layer(packet, "UDP");
    const ip = parseIp(bytes);
    const udp = parsed(bytes);
    assert.ok(!isPacketError(ip));
    assert.equal(fields.sport, udp.srcPort, name);
    assert.equal(fields.dport, udp.dstPort, name);
    assert.equal(fields.len, udp.payload.length + 8, name);
    assert.equal(fields.chksum, udp.checksum, name);
    const raw = packet.layers.find((l) => l.layer === "Raw");
    assert.equal(raw ? String(raw.fields.load) : "", toHex(udp.payload), name);
    const network = layer(packet, ip.version === 4 ? "IP" : "IPv6");
    assert.equal(ip.version === 4 ? network.ttl : network.hlim, 5, name);
  }
  assert.equal(layer(dissect.v6InPlace, "Raw").load, "0908070605");
});

Deno.test("udp: a checksum that computes to zero is sent as 0xffff (RFC 768)", async () => {
  const { dissect } = await scapy();
  assert.equal(parsed(OURS.v4ZeroSum).checksum, 0xffff);
  assert.equal(layer(dissect.v4ZeroSum, "UDP").chksum, 0xffff);
  assert.deepEqual(badChecksums(dissect.v4ZeroSum), []);
});

Deno.test("udp: a length field shorter than the IP payload trims it", () => {
  const packet = new Uint8Array(OURS.v4.length + 4);
  packet.set(OURS.v4);
  packet[3] += 4; // IP total length covers 4 trailing bytes; UDP length does not.
  resealIpv4(packet);
  const ip = parseIp(packet);
  assert.ok(!isPacketError(ip), String(ip));
  const udp = parseUdp(ip);
  assert.ok(!isPacketError(udp), String(udp));
  assert.equal(udp.payload.length, OURS.v4.length - 28);
});

/** A copy of `bytes` changed by `edit`. */
function edited(bytes: Uint8Array, edit: (b: Uint8Array) => void): Uint8Array {
  const copy = bytes.slice();
  edit(copy);
  return copy;
}

Deno.test("udp: malformed datagrams give error codes, never exceptions", () => {
  const v4 = OURS.v4;
  const v6 = OURS.v6;
  // An IPv4 header declaring only 7 bytes of payload.
  const short = resealIpv4(
    fromHex("4500001b0000400040110000" + "0a0a00010a0a0002" + "00010002000f00"),
  );
  const cases: Array<[string, Uint8Array, PacketError]> = [
    ["length field 7", edited(v4, (b) => b[25] = 7), "bad-udp-length"],
    ["length field past the IP payload", edited(v4, (b) => b[25] += 1), "bad-udp-length"],
    ["payload bit flipped (v4)", edited(v4, (b) => b[30] ^= 4), "bad-checksum"],
    [
      "address changed (pseudo-header)",
      edited(v4, (b) => resealIpv4((b[19] ^= 1, b))),
      "bad-checksum",
    ],
    ["payload bit flipped (v6)", edited(v6, (b) => b[50] ^= 4), "bad-checksum"],
    ["checksum off by one", edited(v6, (b) => b[47] ^= 1), "bad-checksum"],
    ["port changed", edited(v4, (b) => b[21] ^= 1), "bad-checksum"],
    ["7-byte IP payload", short, "truncated"],
  ];
  for (const [name, bytes, expected] of cases) {
    const ip = parseIp(bytes);
    assert.equal(isPacketError(ip) ? ip : parseUdp(ip), expected, name);
  }
  const tcp = parseIp(resealIpv4(fromHex("450000140000400040060000" + "0a0a00010a0a0002")));
  assert.ok(!isPacketError(tcp), String(tcp));
  assert.equal(parseUdp(tcp), "wrong-protocol");
});

Deno.test("udp: fragments are refused (their checksum covers the whole datagram)", async () => {
  const { build } = await scapy();
  const fragment = build.v6Chain.bytes.slice();
  // The hop-by-hop header becomes a fragment header: first fragment of a UDP datagram.
  fragment[6] = 44;
  fragment.set([17, 0, 0, 1], 40); // next header UDP, offset 0, more fragments
  const ip = parseIp(fragment);
  assert.ok(!isPacketError(ip), String(ip));
  assert.equal(ip.fragment, true);
  assert.equal(parseUdp(ip), "fragment");
});

Deno.test("udp: writeUdpPacket throws RangeError on misuse", () => {
  const payload = new Uint8Array(10);
  assert.throws(
    () =>
      writeUdpPacket(new Uint8Array(37), { src: SRC4, dst: DST4, srcPort: 1, dstPort: 2, payload }),
    /37 bytes cannot hold a 38-byte UDP packet/,
  );
  const huge = new Uint8Array(65528);
  assert.throws(
    () =>
      writeUdpPacket(new Uint8Array(70000), {
        src: SRC6,
        dst: DST6,
        srcPort: 1,
        dstPort: 2,
        payload: huge,
      }),
    /65536 bytes exceeds the 65535-byte length field/,
  );
  assert.throws(
    () =>
      writeUdpPacket(new Uint8Array(70000), {
        src: SRC4,
        dst: DST4,
        srcPort: 1,
        dstPort: 2,
        payload: huge.subarray(1),
      }),
    /IPv4 packet of 65555 bytes/,
  );
});
