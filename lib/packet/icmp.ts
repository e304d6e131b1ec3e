/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: parse with checksum verification (the
 * ICMPv6 one covers the pseudo-header), and answer echo requests.
 */
import { placeBytes, readU16, writeU16 } from "./bytes.ts";
import { checksumVerifies, finishChecksum, pseudoHeaderSum, sumWords } from "./checksum.ts";
import { isPacketError, type PacketError } from "./errors.ts";
import { ipHeaderLength, type IpPacket, parseIp, writeIpHeader } from "./ip.ts";
import { PROTOCOL_ICMP, PROTOCOL_ICMPV6 } from "./protocols.ts";

/** Length of an ICMP header: type, code, checksum and the 4-byte rest of header. */
export const ICMP_HEADER_LENGTH = 8;
/** ICMPv4 echo reply type. */
export const ICMPV4_ECHO_REPLY = 0;
/** ICMPv4 destination unreachable type. */
export const ICMPV4_DESTINATION_UNREACHABLE = 3;
/** ICMPv4 echo request type. */
export const ICMPV4_ECHO_REQUEST = 8;
/** ICMPv6 destination unreachable type. */
export const ICMPV6_DESTINATION_UNREACHABLE = 1;
/** ICMPv6 echo request type. */
export const ICMPV6_ECHO_REQUEST = 128;
/** ICMPv6 echo reply type. */
export const ICMPV6_ECHO_REPLY = 129;

/** A parsed, verified ICMP or ICMPv6 message; offsets are relative to the IP packet's `bytes`. */
export interface IcmpMessage {
  /** Message type. */
  type: number;
  /** Message code. */
  code: number;
  /** The checksum as received (already verified). */
  checksum: number;
  /** Whether this is an echo request or reply of the packet's ICMP version (others: neither). */
  echo: "request" | "reply" | null;
  /** Bytes 4–5: the echo identifier (for other types, the first half of the rest of header). */
  identifier: number;
  /** Bytes 6–7: the echo sequence number (for other types, the second half). */
  sequence: number;
  /** Offset of the data after the 8-byte header in the IP packet's `bytes`. */
  dataOffset: number;
  /** The data after the header (echo payload, or the quoted packet of an error): a view. */
  data: Uint8Array;
}

/**
 * Parses the ICMP (IPv4, protocol 1) or ICMPv6 (IPv6, next header 58) message of a parsed IP
 * packet. Rejects the other version's ICMP, fragments, fewer than 8 bytes and a bad checksum.
 * Never throws.
 */
export function parseIcmp(ip: IpPacket): IcmpMessage | PacketError {
  if (ip.protocol !== (ip.version === 4 ? PROTOCOL_ICMP : PROTOCOL_ICMPV6)) {
    return "wrong-protocol";
  }
  if (ip.fragment) return "fragment";
  if (ip.payloadLength < ICMP_HEADER_LENGTH) return "truncated";
  const bytes = ip.bytes;
  const start = ip.payloadOffset;
  const end = start + ip.payloadLength;
  const pseudo = ip.version === 6
    ? pseudoHeaderSum(ip.src, ip.dst, PROTOCOL_ICMPV6, ip.payloadLength)
    : 0;
  if (!checksumVerifies(bytes, start, end, pseudo)) return "bad-checksum";
  const type = bytes[start];
  const request = ip.version === 4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
  const reply = ip.version === 4 ? ICMPV4_ECHO_REPLY : ICMPV6_ECHO_REPLY;
  return {
    type,
    code: bytes[start + 1],
    checksum: readU16(bytes, start + 2),
    echo: type === request ? "request" : type === reply ? "reply" : null,
    identifier: readU16(bytes, start + 4),
    sequence: readU16(bytes, start + 6),
    dataOffset: start + ICMP_HEADER_LENGTH,
    data: bytes.subarray(start + ICMP_HEADER_LENGTH, end),
  };
}

/**
 * Writes the ICMP checksum of the message at `out[start, end)`, where the IP header at
 * `out[0]` (no options or extension headers) is already written.
 */
export function fillIcmpChecksum(out: Uint8Array, start: number, end: number): void {
  writeU16(out, start + 2, 0);
  // The IPv6 pseudo-header: both addresses (contiguous at 8-39), length, next header.
  const pseudo = out[0] >> 4 === 6 ? sumWords(out, 8, 40) + (end - start) + PROTOCOL_ICMPV6 : 0;
  writeU16(out, start + 2, finishChecksum(sumWords(out, start, end, pseudo)));
}

/**
 * Answers an ICMP or ICMPv6 echo request: writes the reply at `out[0]` (`out` may be `request`
 * itself, for an in-place reply) and returns its length. The reply goes from the request's
 * destination to its source with a fresh IP header (TTL / hop limit `hopLimit`; IPv4 options
 * and IPv6 extension headers dropped) and keeps the identifier, sequence number and data.
 * A request that does not parse, is a fragment or is not an echo request yields its code.
 * Throws a RangeError only when `out` is shorter than the reply (never when it is `request`).
 */
export function writeEchoReply(
  request: Uint8Array,
  out: Uint8Array = request,
  hopLimit?: number,
): number | PacketError {
  const ip = parseIp(request);
  if (isPacketError(ip)) return ip;
  const message = parseIcmp(ip);
  if (isPacketError(message)) return message;
  if (message.echo !== "request") return "not-echo-request";
  const headerLength = ipHeaderLength(ip.src);
  const total = headerLength + ip.payloadLength;
  if (out.length < total) {
    throw new RangeError(`buffer of ${out.length} bytes cannot hold a ${total}-byte echo reply`);
  }
  // The message moves first: in place it only moves down over options / extension headers,
  // leaving the addresses that the header write then swaps.
  placeBytes(out, headerLength, request.subarray(ip.payloadOffset, ip.packetLength));
  writeIpHeader(out, {
    src: ip.dst,
    dst: ip.src,
    protocol: ip.protocol,
    payloadLength: ip.payloadLength,
    hopLimit,
  });
  out[headerLength] = ip.version === 4 ? ICMPV4_ECHO_REPLY : ICMPV6_ECHO_REPLY;
  out[headerLength + 1] = 0;
  fillIcmpChecksum(out, headerLength, total);
  return total;
}
