/**
 * IPv6 headers (RFC 8200): parse with validation, walking extension headers to the
 * upper-layer protocol, and write a fixed header.
 */
import { readU16, readU32, writeAddressPair, writeU16, writeU32 } from "./bytes.ts";
import type { PacketError } from "./errors.ts";
import type { IpFields } from "./ip_fields.ts";
import { DEFAULT_HOP_LIMIT } from "./ipv4.ts";

/** Length of the fixed IPv6 header. */
export const IPV6_HEADER_LENGTH = 40;
/** The minimum link MTU every IPv6 link supports (RFC 8200 §5). */
export const IPV6_MIN_MTU = 1280;

const HOP_BY_HOP = 0;
const ROUTING = 43;
const FRAGMENT = 44;
const DESTINATION_OPTIONS = 60;

/** A parsed, validated IPv6 packet. */
export interface Ipv6Packet extends IpFields {
  /** IP version. */
  version: 6;
  /** Traffic class (DSCP and ECN). */
  trafficClass: number;
  /** Flow label (20 bits). */
  flowLabel: number;
  /** The fixed header's next header field (the first extension header, if any). */
  nextHeader: number;
}

/**
 * Parses and validates an IPv6 packet: version 6, payload length within the buffer, then
 * hop-by-hop (first only), routing (only with no segments left: an endpoint routes nothing, so
 * the destination address is final and right for pseudo-headers), fragment and
 * destination-options headers, each bounds checked, up to the upper-layer protocol. A fragment (offset non-zero or more-fragments set)
 * stops the walk at the fragment header with `fragment` true; an atomic fragment (offset 0, no
 * more) is walked through like a whole packet (RFC 6946). Jumbograms are rejected. Never throws.
 */
export function parseIpv6(bytes: Uint8Array): Ipv6Packet | PacketError {
  if (bytes.length < IPV6_HEADER_LENGTH) return "truncated";
  if (bytes[0] >> 4 !== 6) return "bad-version";
  const packetLength = IPV6_HEADER_LENGTH + readU16(bytes, 4);
  if (packetLength > bytes.length) return "bad-length";
  const nextHeader = bytes[6];
  let protocol = nextHeader;
  let offset = IPV6_HEADER_LENGTH;
  let fragment = false;
  let fragmentOffset = 0;
  let moreFragments = false;
  let identification = 0;
  walk: for (;;) {
    switch (protocol) {
      case HOP_BY_HOP:
      case ROUTING:
      case DESTINATION_OPTIONS: {
        if (protocol === HOP_BY_HOP && offset !== IPV6_HEADER_LENGTH) {
          return "bad-extension-header";
        }
        if (offset + 8 > packetLength) return "bad-extension-header";
        const length = (bytes[offset + 1] + 1) * 8;
        if (offset + length > packetLength) return "bad-extension-header";
        // Segments left: this node is not the final destination, and routes nothing.
        if (protocol === ROUTING && bytes[offset + 3] !== 0) return "bad-extension-header";
        protocol = bytes[offset];
        offset += length;
        break;
      }
      case FRAGMENT: {
        if (offset + 8 > packetLength) return "bad-extension-header";
        const field = readU16(bytes, offset + 2);
        fragmentOffset = field & 0xfff8;
        moreFragments = (field & 1) !== 0;
        identification = readU32(bytes, offset + 4);
        protocol = bytes[offset];
        offset += 8;
        if (fragmentOffset !== 0 || moreFragments) {
          fragment = true;
          break walk;
        }
        break;
      }
      default:
        break walk;
    }
  }
  const word = readU32(bytes, 0);
  return {
    version: 6,
    bytes,
    src: bytes.subarray(8, 24),
    dst: bytes.subarray(24, 40),
    protocol,
    hopLimit: bytes[7],
    packetLength,
    payloadOffset: offset,
    payloadLength: packetLength - offset,
    fragment,
    fragmentOffset,
    moreFragments,
    identification,
    trafficClass: (word >>> 20) & 0xff,
    flowLabel: word & 0xfffff,
    nextHeader,
  };
}

/** What an IPv6 header is written from. */
export interface Ipv6HeaderInit {
  /** Source address (16 bytes; may be a view into the output buffer). */
  src: Uint8Array;
  /** Destination address (16 bytes; may be a view into the output buffer). */
  dst: Uint8Array;
  /** Next header: the payload's protocol (no extension headers are written). */
  protocol: number;
  /** Bytes after the 40-byte header. */
  payloadLength: number;
  /** Hop limit (default 64). */
  hopLimit?: number;
  /** Traffic class (default 0). */
  trafficClass?: number;
  /** Flow label (default 0). */
  flowLabel?: number;
}

/**
 * Writes a 40-byte IPv6 header at `out[0]` and returns 40. Throws a RangeError for a misuse:
 * wrong address sizes, a payload above 65535 (no jumbograms), a short buffer.
 */
export function writeIpv6Header(out: Uint8Array, init: Ipv6HeaderInit): number {
  if (init.src.length !== 16 || init.dst.length !== 16) {
    throw new RangeError(
      `IPv6 header needs 16-byte addresses, got ${init.src.length} and ${init.dst.length} bytes`,
    );
  }
  if (init.payloadLength > 0xffff) {
    throw new RangeError(`IPv6 payload of ${init.payloadLength} bytes exceeds 65535`);
  }
  if (out.length < IPV6_HEADER_LENGTH) {
    throw new RangeError(`buffer of ${out.length} bytes cannot hold an IPv6 header`);
  }
  writeAddressPair(out, 8, init.src, init.dst, 16);
  writeU32(
    out,
    0,
    (6 << 28 | (init.trafficClass ?? 0) << 20 | ((init.flowLabel ?? 0) & 0xfffff)) >>> 0,
  );
  writeU16(out, 4, init.payloadLength);
  out[6] = init.protocol;
  out[7] = init.hopLimit ?? DEFAULT_HOP_LIMIT;
  return IPV6_HEADER_LENGTH;
}
