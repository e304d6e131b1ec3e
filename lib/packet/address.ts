/** IP addresses between text and the 4- or 16-byte form packets carry. */
import ipaddr from "ipaddr.js";

/**
 * The text form of a 4-byte (dotted quad) or 16-byte (RFC 5952: compressed, v4-mapped as
 * "::ffff:1.2.3.4") address. Throws a RangeError for any other length.
 */
export function formatIpAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length === 16) {
    const ip = new ipaddr.IPv6(
      Array.from({ length: 8 }, (_, i) => bytes[2 * i] << 8 | bytes[2 * i + 1]),
    );
    return ip.isIPv4MappedAddress() ? `::ffff:${ip.toIPv4Address()}` : ip.toRFC5952String();
  }
  throw new RangeError(`IP address must be 4 or 16 bytes, got ${bytes.length}`);
}

/**
 * The bytes of an IPv4 address (strict dotted quad: "127.1" or octal forms are refused) or an
 * IPv6 address (16 bytes, v4-mapped ones included; no "%zone"). Throws an Error naming the
 * text otherwise.
 */
export function parseIpAddress(text: string): Uint8Array {
  if (
    ipaddr.IPv4.isValidFourPartDecimal(text) || (ipaddr.IPv6.isValid(text) && !text.includes("%"))
  ) {
    return Uint8Array.from(ipaddr.parse(text).toByteArray());
  }
  throw new Error(`invalid IP address "${text}": expected a dotted quad or an IPv6 address`);
}

/** Whether two addresses (or any byte views) hold the same bytes. */
export function ipAddressEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
