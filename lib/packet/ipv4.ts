/** IPv4 headers (RFC 791): parse with validation, and write with the header checksum. */
import { readU16, writeAddressPair, writeU16 } from "./bytes.ts";
import { checksumVerifies, internetChecksum } from "./checksum.ts";
import type { PacketError } from "./errors.ts";
import type { IpFields } from "./ip_fields.ts";

/** Length of an IPv4 header without options. */
export const IPV4_HEADER_LENGTH = 20;
/** TTL / hop limit of packets built here unless the caller gives one. */
export const DEFAULT_HOP_LIMIT = 64;

/** A parsed, validated IPv4 packet. */
export interface Ipv4Packet extends IpFields {
  /** IP version. */
  version: 4;
  /** Header length in bytes, options included (IHL × 4). */
  headerLength: number;
  /** Type of service byte (DSCP and ECN). */
  tos: number;
  /** The don't-fragment flag. */
  dontFragment: boolean;
  /** The header checksum as received (already verified). */
  checksum: number;
}

/**
 * Parses and validates an IPv4 packet: version 4, IHL ≥ 5 within the buffer, total length
 * between the header length and the buffer length, and the header checksum. Never throws.
 */
export function parseIpv4(bytes: Uint8Array): Ipv4Packet | PacketError {
  if (bytes.length < IPV4_HEADER_LENGTH) return "truncated";
  if (bytes[0] >> 4 !== 4) return "bad-version";
  const headerLength = (bytes[0] & 0x0f) * 4;
  if (headerLength < IPV4_HEADER_LENGTH || headerLength > bytes.length) {
    return "bad-header-length";
  }
  const packetLength = readU16(bytes, 2);
  if (packetLength < headerLength || packetLength > bytes.length) return "bad-length";
  if (!checksumVerifies(bytes, 0, headerLength)) return "bad-checksum";
  const flags = readU16(bytes, 6);
  const moreFragments = (flags & 0x2000) !== 0;
  const fragmentOffset = (flags & 0x1fff) * 8;
  return {
    version: 4,
    bytes,
    src: bytes.subarray(12, 16),
    dst: bytes.subarray(16, 20),
    protocol: bytes[9],
    hopLimit: bytes[8],
    packetLength,
    payloadOffset: headerLength,
    payloadLength: packetLength - headerLength,
    fragment: moreFragments || fragmentOffset !== 0,
    fragmentOffset,
    moreFragments,
    identification: readU16(bytes, 4),
    headerLength,
    tos: bytes[1],
    dontFragment: (flags & 0x4000) !== 0,
    checksum: readU16(bytes, 10),
  };
}

/** What an IPv4 header is written from. */
export interface Ipv4HeaderInit {
  /** Source address (4 bytes; may be a view into the output buffer). */
  src: Uint8Array;
  /** Destination address (4 bytes; may be a view into the output buffer). */
  dst: Uint8Array;
  /** Protocol of the payload. */
  protocol: number;
  /** Bytes after the header. */
  payloadLength: number;
  /** TTL (default 64). */
  hopLimit?: number;
  /** Type of service byte (default 0). */
  tos?: number;
  /** Identification (default 0; RFC 6864 allows any value when don't-fragment is set). */
  identification?: number;
  /** The don't-fragment flag (default true). */
  dontFragment?: boolean;
}

/**
 * Writes a 20-byte IPv4 header (no options) at `out[0]`, with its checksum, and returns 20.
 * Throws a RangeError for a misuse: wrong address sizes, a total above 65535, a short buffer.
 */
export function writeIpv4Header(out: Uint8Array, init: Ipv4HeaderInit): number {
  const total = IPV4_HEADER_LENGTH + init.payloadLength;
  if (init.src.length !== 4 || init.dst.length !== 4) {
    throw new RangeError(
      `IPv4 header needs 4-byte addresses, got ${init.src.length} and ${init.dst.length} bytes`,
    );
  }
  if (total > 0xffff) {
    throw new RangeError(`IPv4 packet of ${total} bytes exceeds the 65535-byte total length`);
  }
  if (out.length < IPV4_HEADER_LENGTH) {
    throw new RangeError(`buffer of ${out.length} bytes cannot hold an IPv4 header`);
  }
  writeAddressPair(out, 12, init.src, init.dst, 4);
  out[0] = 0x45;
  out[1] = init.tos ?? 0;
  writeU16(out, 2, total);
  writeU16(out, 4, init.identification ?? 0);
  writeU16(out, 6, (init.dontFragment ?? true) ? 0x4000 : 0);
  out[8] = init.hopLimit ?? DEFAULT_HOP_LIMIT;
  out[9] = init.protocol;
  writeU16(out, 10, 0);
  writeU16(out, 10, internetChecksum(out, 0, IPV4_HEADER_LENGTH));
  return IPV4_HEADER_LENGTH;
}
