/** Version-dispatching IP parsing and header writing over `ipv4.ts` and `ipv6.ts`. */
import type { PacketError } from "./errors.ts";
import { IPV4_HEADER_LENGTH, type Ipv4Packet, parseIpv4, writeIpv4Header } from "./ipv4.ts";
import { IPV6_HEADER_LENGTH, type Ipv6Packet, parseIpv6, writeIpv6Header } from "./ipv6.ts";

/** A parsed IPv4 or IPv6 packet; `version` discriminates. */
export type IpPacket = Ipv4Packet | Ipv6Packet;

/**
 * Parses and validates an IP packet by its version nibble (see `parseIpv4` / `parseIpv6`).
 * Malformed input yields a `PacketError` code; it never throws. Honours the view's byteOffset.
 */
export function parseIp(bytes: Uint8Array): IpPacket | PacketError {
  if (bytes.length === 0) return "truncated";
  switch (bytes[0] >> 4) {
    case 4:
      return parseIpv4(bytes);
    case 6:
      return parseIpv6(bytes);
    default:
      return "bad-version";
  }
}

/** What an IP header of either version is written from; the address size picks the version. */
export interface IpHeaderInit {
  /** Source address: 4 bytes (IPv4) or 16 bytes (IPv6); may be a view into the output. */
  src: Uint8Array;
  /** Destination address, the same size as `src`; may be a view into the output. */
  dst: Uint8Array;
  /** Upper-layer protocol. */
  protocol: number;
  /** Bytes after the IP header. */
  payloadLength: number;
  /** TTL / hop limit (default 64). */
  hopLimit?: number;
}

/** The header length `writeIpHeader` uses for these addresses: 20 (IPv4) or 40 (IPv6). */
export function ipHeaderLength(src: Uint8Array): number {
  return src.length === 4 ? IPV4_HEADER_LENGTH : IPV6_HEADER_LENGTH;
}

/**
 * Writes an IPv4 (4-byte addresses) or IPv6 (16-byte addresses) header without options at
 * `out[0]` and returns its length. Throws a RangeError for a misuse (bad address sizes,
 * oversize payload, short buffer).
 */
export function writeIpHeader(out: Uint8Array, init: IpHeaderInit): number {
  if (init.src.length === 4) return writeIpv4Header(out, init);
  if (init.src.length === 16) return writeIpv6Header(out, init);
  throw new RangeError(`IP address must be 4 or 16 bytes, got ${init.src.length}`);
}
