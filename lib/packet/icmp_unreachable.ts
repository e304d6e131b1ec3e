/**
 * ICMP destination unreachable (RFC 792 type 3) and ICMPv6 destination unreachable (RFC 4443
 * type 1) about an offending packet, with the rules on when no error may be sent.
 */
import { writeU32 } from "./bytes.ts";
import { isPacketError, type PacketError } from "./errors.ts";
import {
  fillIcmpChecksum,
  ICMP_HEADER_LENGTH,
  ICMPV4_DESTINATION_UNREACHABLE,
  ICMPV6_DESTINATION_UNREACHABLE,
} from "./icmp.ts";
import { ipHeaderLength, type IpPacket, parseIp, writeIpHeader } from "./ip.ts";
import { IPV6_MIN_MTU } from "./ipv6.ts";
import { PROTOCOL_ICMP, PROTOCOL_ICMPV6 } from "./protocols.ts";

/** ICMPv4 unreachable codes (RFC 792, RFC 1812). */
export const UNREACHABLE_V4 = {
  network: 0,
  host: 1,
  protocol: 2,
  port: 3,
  adminProhibited: 13,
} as const;

/** ICMPv6 unreachable codes (RFC 4443 §3.1). */
export const UNREACHABLE_V6 = {
  noRoute: 0,
  adminProhibited: 1,
  address: 3,
  port: 4,
} as const;

/** ICMPv4 error types: unreachable, source quench, redirect, time exceeded, parameter problem. */
const ICMPV4_ERROR_TYPES = new Set([3, 4, 5, 11, 12]);

/** How the unreachable message is sent. */
export interface UnreachableOptions {
  /** The code: one of `UNREACHABLE_V4` / `UNREACHABLE_V6` for the packet's version. */
  code: number;
  /** Source address of the error (default: the offending packet's destination). */
  src?: Uint8Array;
  /** TTL / hop limit (default 64). */
  hopLimit?: number;
}

/**
 * Writes a destination unreachable message about `offending` at `out[0]`, to its source, and
 * returns its length. It quotes the offending IP header plus 8 bytes (IPv4) or as much of the
 * packet as keeps the message within 1280 bytes (IPv6). `out` may be `offending` itself if it
 * has room. A packet that does not parse yields its code, and "error-suppressed" when no error
 * may be sent: about an ICMP error, a non-first fragment, or a packet from an unspecified or
 * multicast source or to a multicast or broadcast destination. Throws a RangeError when `out`
 * is too small or `src` has the wrong size.
 */
export function writeDestinationUnreachable(
  offending: Uint8Array,
  out: Uint8Array,
  options: UnreachableOptions,
): number | PacketError {
  const ip = parseIp(offending);
  if (isPacketError(ip)) return ip;
  if (errorSuppressed(ip)) return "error-suppressed";
  const src = options.src ?? ip.dst;
  if (src.length !== ip.src.length) {
    throw new RangeError(
      `ICMP error source has ${src.length} bytes for an IPv${ip.version} packet`,
    );
  }
  const headerLength = ipHeaderLength(ip.src);
  const quoted = ip.version === 4
    ? Math.min(ip.payloadOffset + 8, ip.packetLength)
    : Math.min(ip.packetLength, IPV6_MIN_MTU - headerLength - ICMP_HEADER_LENGTH);
  const icmpLength = ICMP_HEADER_LENGTH + quoted;
  const total = headerLength + icmpLength;
  if (out.length < total) {
    throw new RangeError(`buffer of ${out.length} bytes cannot hold a ${total}-byte ICMP error`);
  }
  // The quote moves first: in place it moves up past the header, leaving the addresses intact.
  out.set(offending.subarray(0, quoted), headerLength + ICMP_HEADER_LENGTH);
  writeIpHeader(out, {
    src,
    dst: ip.src,
    protocol: ip.version === 4 ? PROTOCOL_ICMP : PROTOCOL_ICMPV6,
    payloadLength: icmpLength,
    hopLimit: options.hopLimit,
  });
  out[headerLength] = ip.version === 4
    ? ICMPV4_DESTINATION_UNREACHABLE
    : ICMPV6_DESTINATION_UNREACHABLE;
  out[headerLength + 1] = options.code;
  writeU32(out, headerLength + 4, 0);
  fillIcmpChecksum(out, headerLength, total);
  return total;
}

/** Whether RFC 1122 §3.2.2 / RFC 4443 §2.4(e) forbid an ICMP error about this packet. */
function errorSuppressed(ip: IpPacket): boolean {
  if (ip.fragmentOffset !== 0) return true;
  const bytes = ip.bytes;
  const icmpType = ip.payloadLength > 0 ? bytes[ip.payloadOffset] : -1;
  if (ip.version === 4) {
    if (ip.protocol === PROTOCOL_ICMP && ICMPV4_ERROR_TYPES.has(icmpType)) return true;
    const { src, dst } = ip;
    // 0.0.0.0/8 is no single host; 224/4 is multicast, 240/4 reserved, and 255.255.255.255.
    return src[0] === 0 || src[0] >= 224 || dst[0] >= 224;
  }
  if (ip.protocol === PROTOCOL_ICMPV6 && icmpType >= 0 && icmpType < 128) return true;
  return ip.src[0] === 0xff || ip.dst[0] === 0xff || ip.src.every((byte) => byte === 0);
}
