/**
 * 100,000 random and mutated packets through every parser and writer in lib/packet: nothing
 * throws, every accepted packet's offsets stay inside it, and every reply or ICMP error we
 * write parses back as valid. Deterministic: set PACKET_FUZZ_SEED to explore other packets.
 */
import assert from "node:assert/strict";
import {
  finishChecksum,
  isPacketError,
  PACKET_ERRORS,
  type PacketError,
  parseIcmp,
  parseIp,
  parseIpAddress,
  parseIpv4,
  parseIpv6,
  parseTcp,
  parseUdp,
  pseudoHeaderSum,
  sumWords,
  TCP_ACK,
  TCP_SYN,
  writeDestinationUnreachable,
  writeEchoReply,
  writeTcpPacket,
  writeUdpPacket,
} from "../lib/packet/mod.ts";
import { prng, resealIpv4 } from "./packet/bytes.ts";

const PACKETS = 100_000;
const SEED = Number(Deno.env.get("PACKET_FUZZ_SEED") ?? 20240601);

const SRC4 = parseIpAddress("10.1.0.1");
const DST4 = parseIpAddress("10.1.0.2");
const SRC6 = parseIpAddress("fd00:1::1");
const DST6 = parseIpAddress("fd00:1::2");

/** An ICMP echo request built by hand (the library only writes replies and errors). */
function echoRequest(src: Uint8Array, dst: Uint8Array, data: number): Uint8Array {
  const v6 = src.length === 16;
  const out = new Uint8Array(48 + data);
  // A UDP packet gives a valid IP header; the ICMP message then replaces its payload.
  const length = writeUdpPacket(out, {
    src,
    dst,
    srcPort: 0,
    dstPort: 0,
    payload: new Uint8Array(data),
  });
  const start = v6 ? 40 : 20;
  if (v6) out[6] = 58;
  else {
    out[9] = 1;
    resealIpv4(out);
  }
  out.fill(0, start, start + 8);
  out[start] = v6 ? 128 : 8;
  out.set([0x12, 0x34, 0, 1], start + 4);
  const pseudo = v6 ? pseudoHeaderSum(src, dst, 58, length - start) : 0;
  const checksum = finishChecksum(sumWords(out, start, length, pseudo));
  out[start + 2] = checksum >> 8;
  out[start + 3] = checksum;
  return out.slice(0, length);
}

/** Inserts IPv6 extension headers (next header, length, body) after the fixed header. */
function withExtensions(packet: Uint8Array, headers: Array<[number, Uint8Array]>): Uint8Array {
  const extra = headers.reduce((n, [, body]) => n + body.length, 0);
  const out = new Uint8Array(packet.length + extra);
  out.set(packet.subarray(0, 40));
  let at = 40;
  let previous = 6; // Offset of the next-header field to patch.
  for (const [type, body] of headers) {
    const upper = out[previous];
    out[previous] = type;
    out.set(body, at);
    out[at] = upper;
    previous = at;
    at += body.length;
  }
  out.set(packet.subarray(40), at);
  const payload = out.length - 40;
  out[4] = payload >> 8;
  out[5] = payload;
  return out;
}

/** Valid packets of every kind the codecs handle, to mutate. */
function seeds(): Uint8Array[] {
  const list: Uint8Array[] = [];
  const buffer = new Uint8Array(2000);
  const keep = (length: number) => list.push(buffer.slice(0, length));
  for (const [src, dst] of [[SRC4, DST4], [SRC6, DST6]]) {
    for (const size of [0, 1, 17, 512]) {
      keep(
        writeUdpPacket(buffer, {
          src,
          dst,
          srcPort: 53,
          dstPort: 5353,
          payload: new Uint8Array(size).fill(size),
        }),
      );
      keep(
        writeTcpPacket(buffer, {
          src,
          dst,
          srcPort: 1,
          dstPort: 2,
          seq: 0xfffffff0 + size,
          ack: size,
          flags: size ? TCP_ACK : TCP_SYN,
          window: 1000,
          options: size === 17
            ? { timestamp: { value: 1, echo: 2 }, sack: [[1, 2], [3, 4], [5, 6]] }
            : { mss: 1460, windowScale: 7, sackPermitted: true, timestamp: { value: 3, echo: 4 } },
          payload: new Uint8Array(size).fill(7),
        }),
      );
      list.push(echoRequest(src, dst, size));
    }
  }
  const v6Udp = list.find((p) => p[0] >> 4 === 6 && p[6] === 17)!;
  const v6Echo = list.find((p) => p[0] >> 4 === 6 && p[6] === 58)!;
  const hopByHop = Uint8Array.from([0, 0, 1, 4, 0, 0, 0, 0]);
  const routing = Uint8Array.from([0, 2, 0, 0, 0, 0, 0, 0, ...new Array(16).fill(0x20)]);
  const fragment = (offset: number, more: boolean) =>
    Uint8Array.from([0, 0, offset >> 8, (offset & 0xf8) | (more ? 1 : 0), 1, 2, 3, 4]);
  list.push(withExtensions(v6Udp, [[0, hopByHop], [60, hopByHop.slice()], [43, routing]]));
  list.push(withExtensions(v6Udp, [[44, fragment(0, false)], [60, hopByHop.slice()]]));
  list.push(withExtensions(v6Udp, [[44, fragment(0, true)]]));
  list.push(withExtensions(v6Udp, [[44, fragment(1480, false)]]));
  list.push(withExtensions(v6Echo, [[0, hopByHop]]));
  return list;
}

/** Re-seals the IPv4 header and the transport checksum, so mutations reach deeper layers. */
function reseal(packet: Uint8Array) {
  if (packet.length >= 20 && packet[0] >> 4 === 4) resealIpv4(packet);
  const ip = parseIp(packet);
  if (isPacketError(ip) || ip.fragment) return;
  const start = ip.payloadOffset;
  const field = ip.protocol === 6 ? 16 : ip.protocol === 17 ? 6 : 2;
  const end = ip.protocol === 17 && ip.payloadLength >= 8
    ? Math.min(start + (packet[start + 4] << 8 | packet[start + 5]), start + ip.payloadLength)
    : start + ip.payloadLength;
  if (end - start < field + 2) return;
  packet[start + field] = packet[start + field + 1] = 0;
  const pseudo = ip.protocol === 1 ? 0 : pseudoHeaderSum(ip.src, ip.dst, ip.protocol, end - start);
  const checksum = finishChecksum(sumWords(packet, start, end, pseudo));
  packet[start + field] = checksum >> 8;
  packet[start + field + 1] = checksum;
}

/** One hostile packet of a random kind. */
function hostile(
  random: (n: number) => number,
  seedPackets: Uint8Array[],
  serial: number,
): Uint8Array {
  const seed = seedPackets[random(seedPackets.length)];
  const randomBytes = (length: number) => Uint8Array.from({ length }, () => random(256));
  switch (serial % 7) {
    case 0: // Random bytes.
      return randomBytes(random(1600));
    case 1: { // Random IPv4 with a consistent length and header checksum.
      const packet = randomBytes(20 + random(200));
      packet[0] = 0x40 | (5 + random(11));
      packet[2] = packet.length >> 8;
      packet[3] = packet.length;
      packet[6] &= random(2) ? 0x40 : 0xff;
      packet[9] = [1, 6, 17, random(256)][random(4)];
      return resealIpv4(packet);
    }
    case 2: { // Random IPv6 with a consistent length and a random extension chain.
      const packet = randomBytes(40 + random(200));
      packet[0] = 0x60;
      packet[4] = (packet.length - 40) >> 8;
      packet[5] = packet.length - 40;
      const kinds = [0, 43, 44, 60, 6, 17, 58, 59];
      packet[6] = kinds[random(kinds.length)];
      for (let at = 40; at < packet.length; at += 8) {
        if (random(2)) packet[at] = kinds[random(kinds.length)];
        if (random(2)) packet[at + 1] = random(4);
      }
      return packet;
    }
    case 3: { // A valid packet with a few bytes flipped.
      const packet = seed.slice();
      for (let flips = 1 + random(4); flips > 0; flips--) {
        packet[random(packet.length)] ^= 1 + random(255);
      }
      return packet;
    }
    case 4: { // Flipped, then re-sealed so the checksums pass and the fields are what is tested.
      const packet = seed.slice();
      const headerBytes = Math.min(packet.length, 100);
      for (let flips = 1 + random(3); flips > 0; flips--) packet[random(headerBytes)] = random(256);
      reseal(packet);
      return packet;
    }
    case 5: { // Truncated or extended.
      const packet = new Uint8Array(random(seed.length * 2 + 1));
      packet.set(seed.subarray(0, Math.min(seed.length, packet.length)));
      if (random(2)) reseal(packet);
      return packet;
    }
    default: { // Random TCP options in a re-sealed segment.
      const tcp = seedPackets.filter((p) => p[p[0] >> 4 === 4 ? 9 : 6] === 6);
      const packet = tcp[random(tcp.length)].slice();
      const start = packet[0] >> 4 === 4 ? 20 : 40;
      const end = start + (packet[start + 12] >> 4) * 4;
      for (let at = start + 20; at < end; at++) if (random(3) === 0) packet[at] = random(12);
      if (random(4) === 0) packet[start + 12] = random(16) << 4;
      reseal(packet);
      return packet;
    }
  }
}

/** A copy of `bytes` at a random offset in a larger buffer (byteOffset must be honoured). */
function placed(random: (n: number) => number, bytes: Uint8Array): Uint8Array {
  const offset = random(16);
  const buffer = new Uint8Array(offset + bytes.length + random(16));
  buffer.set(bytes, offset);
  return buffer.subarray(offset, offset + bytes.length);
}

/**
 * Runs every parser and writer over one packet, checking what they accept. With `inPlace`,
 * replies and errors are written over the packet itself (in a 1500-byte receive buffer, as a
 * TUN read leaves it), otherwise into `out`.
 */
function exercise(
  packet: Uint8Array,
  inPlace: boolean,
  out: Uint8Array,
  counts: Map<string, number>,
) {
  const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);
  parseIpv4(packet);
  parseIpv6(packet);
  const ip = parseIp(packet);
  if (isPacketError(ip)) {
    count(`ip:${ip}`);
    return;
  }
  count("ip:ok");
  assert.ok(ip.payloadOffset >= (ip.version === 4 ? 20 : 40));
  assert.ok(ip.payloadLength >= 0);
  assert.equal(ip.payloadOffset + ip.payloadLength, ip.packetLength);
  assert.ok(ip.packetLength <= packet.length);
  assert.equal(ip.src.length, ip.version === 4 ? 4 : 16);
  assert.equal(ip.src.byteOffset, packet.byteOffset + (ip.version === 4 ? 12 : 8));
  /** Checks that an accepted upper layer's data view lies inside the packet where it says. */
  const inside = (name: string, start: number, view: Uint8Array) => {
    count(`${name}:ok`);
    assert.ok(start >= ip.payloadOffset && start + view.length <= ip.packetLength, name);
    assert.equal(view.byteOffset, packet.byteOffset + start, name);
  };
  const udp = parseUdp(ip);
  if (isPacketError(udp)) count(`udp:${udp}`);
  else inside("udp", udp.payloadOffset, udp.payload);
  const tcp = parseTcp(ip);
  if (isPacketError(tcp)) count(`tcp:${tcp}`);
  else {
    inside("tcp", tcp.payloadOffset, tcp.payload);
    const { mss, windowScale } = tcp.options;
    assert.ok(mss === undefined || (mss >= 0 && mss <= 0xffff));
    assert.ok(windowScale === undefined || windowScale <= 14);
  }
  const icmp = parseIcmp(ip);
  if (isPacketError(icmp)) count(`icmp:${icmp}`);
  else inside("icmp", icmp.dataOffset, icmp.data);
  const receiveBuffer = () => {
    const buffer = new Uint8Array(Math.max(1500, packet.length));
    buffer.set(packet);
    return buffer;
  };
  const echoOut = inPlace ? receiveBuffer() : out;
  const reply = writeEchoReply(inPlace ? echoOut.subarray(0, packet.length) : packet, echoOut);
  if (!isPacketError(reply)) {
    count("echo-reply:written");
    const parsed = parseIp(echoOut.subarray(0, reply));
    assert.ok(!isPacketError(parsed), `echo reply: ${parsed}`);
    const message = parseIcmp(parsed);
    assert.ok(!isPacketError(message) && message.echo === "reply", `echo reply: ${message}`);
  }
  const errorOut = inPlace ? receiveBuffer() : out;
  const error = writeDestinationUnreachable(
    inPlace ? errorOut.subarray(0, packet.length) : packet,
    errorOut,
    { code: 1 },
  );
  if (isPacketError(error)) {
    count(`unreachable:${error}`);
  } else {
    count("unreachable:written");
    assert.ok(error <= (ip.version === 4 ? 20 + 8 + 60 + 8 : 1280));
    const parsed = parseIp(errorOut.subarray(0, error));
    assert.ok(!isPacketError(parsed), `unreachable: ${parsed}`);
    const message = parseIcmp(parsed);
    assert.ok(!isPacketError(message), `unreachable: ${message}`);
    assert.equal(message.type, ip.version === 4 ? 3 : 1);
  }
}

Deno.test(`fuzz: ${PACKETS} random and mutated packets never throw (seed ${SEED})`, () => {
  const random = prng(SEED);
  const seedPackets = seeds();
  for (const seed of seedPackets) {
    assert.ok(!isPacketError(parseIp(seed)), "every seed is a valid packet");
  }
  const out = new Uint8Array(70000);
  const counts = new Map<string, number>();
  for (let serial = 0; serial < PACKETS; serial++) {
    const packet = placed(random, hostile(random, seedPackets, serial));
    const inPlace = serial % 10 === 0;
    try {
      exercise(packet, inPlace, out, counts);
    } catch (error) {
      const hex = Array.from(packet, (b) => b.toString(16).padStart(2, "0")).join("");
      throw new Error(`packet ${serial} (seed ${SEED}${inPlace ? ", in place" : ""}): ${hex}`, {
        cause: error,
      });
    }
  }
  const total = [...counts].filter(([key]) => key.startsWith("ip:")).reduce((n, [, c]) => n + c, 0);
  assert.equal(total, PACKETS);
  // Every rejection is a documented code, and the mutations reached every layer.
  for (const key of counts.keys()) {
    const code = key.slice(key.indexOf(":") + 1);
    assert.ok(
      code === "ok" || code === "written" || PACKET_ERRORS.includes(code as PacketError),
      key,
    );
  }
  const expected = [
    "ip:ok",
    "ip:truncated",
    "ip:bad-version",
    "ip:bad-header-length",
    "ip:bad-length",
    "ip:bad-checksum",
    "ip:bad-extension-header",
    "udp:ok",
    "udp:bad-checksum",
    "udp:bad-udp-length",
    "udp:fragment",
    "tcp:ok",
    "tcp:bad-checksum",
    "tcp:bad-data-offset",
    "icmp:ok",
    "icmp:bad-checksum",
    "echo-reply:written",
    "unreachable:written",
    "unreachable:error-suppressed",
  ];
  for (const key of expected) {
    assert.ok((counts.get(key) ?? 0) >= 10, `${key}: ${counts.get(key) ?? 0} times`);
  }
});
