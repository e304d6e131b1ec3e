/**
 * In-place address rewriting of IPv4 packets for the kernel mode, with incremental checksum
 * updates (RFC 1624: HC' = ~(~HC + ~m + m')): the IP header checksum, and the TCP or UDP
 * checksum, whose pseudo-header holds both addresses (a UDP checksum of 0, "none", stays
 * 0; a result of 0 is sent as 0xffff). ICMP's checksum covers no addresses, except in an
 * ICMP error, whose quoted packet is translated too (`translateIcmpError`).
 */
import { foldSum, internetChecksum, PROTOCOL_TCP, PROTOCOL_UDP } from "../../packet/mod.ts";
import { readU16, readU32, writeU16, writeU32 } from "../../packet/bytes.ts";

/** Offset of the source address in an IPv4 header (the destination follows it). */
const SRC = 12;
/** Offset of the IPv4 header checksum. */
const IP_CHECKSUM = 10;
/** ICMPv4 types whose body quotes the packet that caused them. */
const ICMP_ERRORS: ReadonlySet<number> = new Set([3, 4, 5, 11, 12]);
/** Bytes of an ICMP header before the quoted packet. */
const ICMP_HEADER = 8;

/** Replaces the 32-bit word at `at` with `value`; returns the checksum delta ~old + new. */
function swapWord(packet: Uint8Array, at: number, value: number): number {
  const delta = (~readU16(packet, at) & 0xffff) + (~readU16(packet, at + 2) & 0xffff) +
    (value >>> 16) + (value & 0xffff);
  writeU32(packet, at, value);
  return delta;
}

/** Adds `delta` to the checksum at `at`; a UDP checksum of 0 stays 0, and 0 becomes 0xffff. */
function adjustChecksum(packet: Uint8Array, at: number, delta: number, udp: boolean): void {
  const old = readU16(packet, at);
  if (udp && old === 0) return;
  let value = ~foldSum((~old & 0xffff) + delta) & 0xffff;
  if (udp && value === 0) value = 0xffff;
  writeU16(packet, at, value);
}

/** Where the TCP or UDP checksum of a packet whose transport header starts at `l4` lies. */
function transportChecksumAt(protocol: number, l4: number): number | null {
  return protocol === PROTOCOL_TCP ? l4 + 16 : protocol === PROTOCOL_UDP ? l4 + 6 : null;
}

/**
 * Sets the source and destination of the IPv4 packet `packet[0, end)` (a header already
 * validated) and fixes its checksums. The transport checksum is fixed only where the
 * transport header lies within `end` (a fragment past the first has none).
 */
export function rewriteIpv4(
  packet: Uint8Array,
  src: number,
  dst: number,
  end: number = packet.length,
): void {
  const headerLength = (packet[0] & 0x0f) * 4;
  const delta = swapWord(packet, SRC, src) + swapWord(packet, SRC + 4, dst);
  adjustChecksum(packet, IP_CHECKSUM, delta, false);
  const fragmentOffset = readU16(packet, 6) & 0x1fff;
  if (fragmentOffset !== 0) return;
  const protocol = packet[9];
  const at = transportChecksumAt(protocol, headerLength);
  if (at !== null && at + 2 <= end) adjustChecksum(packet, at, delta, protocol === PROTOCOL_UDP);
}

/** The source address of an IPv4 packet as an unsigned 32-bit number. */
export function ipv4Source(packet: Uint8Array): number {
  return readU32(packet, SRC);
}

/** The destination address of an IPv4 packet as an unsigned 32-bit number. */
export function ipv4Destination(packet: Uint8Array): number {
  return readU32(packet, SRC + 4);
}

/**
 * Whether the IPv4 packet `packet` (validated header, no fragment) is an ICMP error whose
 * quoted IPv4 header is complete.
 */
export function isIcmpErrorV4(packet: Uint8Array): boolean {
  const headerLength = (packet[0] & 0x0f) * 4;
  const inner = headerLength + ICMP_HEADER;
  return packet[9] === 1 && packet.length >= inner + 20 &&
    ICMP_ERRORS.has(packet[headerLength]) && packet[inner] >> 4 === 4;
}

/**
 * Translates an ICMP error (see `isIcmpErrorV4`) in place: the outer addresses become
 * `src` → `dst`, and the quoted packet (which went the other way) gets source `dst` and
 * destination `src`, its header checksum and, when quoted, its TCP/UDP checksum fixed;
 * the ICMP checksum is computed again.
 */
export function translateIcmpError(packet: Uint8Array, src: number, dst: number): void {
  const headerLength = (packet[0] & 0x0f) * 4;
  const total = Math.min(readU16(packet, 2), packet.length);
  const inner = packet.subarray(headerLength + ICMP_HEADER, total);
  rewriteIpv4(inner, dst, src, inner.length);
  rewriteIpv4(packet, src, dst, total);
  writeU16(packet, headerLength + 2, 0);
  writeU16(packet, headerLength + 2, internetChecksum(packet, headerLength, total));
}
