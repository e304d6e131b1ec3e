/**
 * IP addresses between the text of a SocketAddress and the 4 or 16 bytes STUN address
 * attributes carry, and comparisons that see through text forms ("::1" and "0::1" are one
 * address; so are "::ffff:1.2.3.4" and "1.2.3.4").
 */
import ipaddr from "ipaddr.js";
import type { SocketAddress } from "../net/address.ts";

/**
 * The 4 bytes of an IPv4 address (strict dotted quad; also from a v4-mapped IPv6 address) or
 * the 16 of an IPv6 one (no "%zone"). Throws a RangeError for anything else.
 */
export function ipToBytes(hostname: string): Uint8Array {
  if (ipaddr.IPv4.isValidFourPartDecimal(hostname)) {
    return Uint8Array.from(ipaddr.IPv4.parse(hostname).toByteArray());
  }
  if (ipaddr.IPv6.isValid(hostname) && !hostname.includes("%")) {
    const ip = ipaddr.IPv6.parse(hostname);
    const plain = ip.isIPv4MappedAddress() ? ip.toIPv4Address() : ip;
    return Uint8Array.from(plain.toByteArray());
  }
  throw new RangeError(`invalid IP address "${hostname}": expected a dotted quad or IPv6`);
}

/** The text of a 4-byte (dotted quad) or 16-byte (RFC 5952; v4-mapped as dotted) address. */
export function ipFromBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`IP address of ${bytes.length} bytes`);
  const ip = new ipaddr.IPv6(
    Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]),
  );
  return ip.isIPv4MappedAddress() ? ip.toIPv4Address().toString() : ip.toRFC5952String();
}

/** A canonical text of an IP for comparisons: the bytes' text, or the text itself if invalid. */
function canonicalIp(hostname: string): string {
  try {
    return ipFromBytes(ipToBytes(hostname));
  } catch {
    return hostname;
  }
}

/** Whether two hostnames are the same IP address. */
export function sameIp(a: string, b: string): boolean {
  return a === b || canonicalIp(a) === canonicalIp(b);
}

/** Whether two socket addresses are the same IP and port. */
export function sameSocketAddress(a: SocketAddress, b: SocketAddress): boolean {
  return a.port === b.port && sameIp(a.hostname, b.hostname);
}
