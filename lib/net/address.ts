/**
 * Socket addresses: parsing `HOST:PORT` text and converting to and from the
 * Linux `sockaddr_in` / `sockaddr_in6` bytes that the kernel and quiche use.
 */
import ipaddr from "ipaddr.js";
import { LINUX } from "../../ffi/libc.ts";

/** An IP address and UDP port; IPv4 is always in dotted form, never v4-mapped. */
export interface SocketAddress {
  hostname: string;
  port: number;
}

/** Address family of a socket: IPv4 only, or IPv6 (dual-stack when bound to `::`). */
export type Family = 4 | 6;

/** Size of `sockaddr_in`. */
export const SOCKADDR_IN_SIZE = 16;
/** Size of `sockaddr_in6`. */
export const SOCKADDR_IN6_SIZE = 28;

/** Parses `1.2.3.4:443`, `[::1]:443` or `localhost:443` (localhost means 127.0.0.1). */
export function parseHostPort(text: string): SocketAddress {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!match) throw new Error(`invalid address "${text}": expected HOST:PORT or [IPv6]:PORT`);
  const port = Number(match[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid port in "${text}": must be 0-65535`);
  }
  const host = match[1] === "localhost" ? "127.0.0.1" : match[1];
  // Only dotted-quad IPv4: C-style forms ("010.0.0.1" as octal, "127.1") mislead.
  if (!ipaddr.IPv4.isValidFourPartDecimal(host) && !ipaddr.IPv6.isValid(host)) {
    throw new Error(`invalid IP address "${host}" in "${text}"`);
  }
  const ip = ipaddr.parse(host);
  const plain = ip.kind() === "ipv6" && (ip as ipaddr.IPv6).isIPv4MappedAddress()
    ? (ip as ipaddr.IPv6).toIPv4Address()
    : ip;
  return { hostname: plain.toString(), port };
}

/** Formats an address as `1.2.3.4:443` or `[::1]:443`. */
export function formatAddress(address: SocketAddress): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}

/** The family of an address's IP. */
export function familyOf(address: SocketAddress): Family {
  return ipaddr.parse(address.hostname).kind() === "ipv6" ? 6 : 4;
}

/**
 * Encodes an address as a sockaddr for a socket of the given family. An IPv4
 * address on an IPv6 socket becomes v4-mapped (`::ffff:a.b.c.d`); an IPv6
 * address cannot be reached from an IPv4 socket and throws.
 */
export function encodeSockaddr(address: SocketAddress, family: Family): Uint8Array {
  let ip = ipaddr.parse(address.hostname);
  if (family === 4) {
    if (ip.kind() !== "ipv4") {
      throw new Error(`cannot reach IPv6 address ${address.hostname} from an IPv4 socket`);
    }
    const out = new Uint8Array(SOCKADDR_IN_SIZE);
    const view = new DataView(out.buffer);
    view.setUint16(0, LINUX.AF_INET, true);
    view.setUint16(2, address.port, false);
    out.set(ip.toByteArray(), 4);
    return out;
  }
  if (ip.kind() === "ipv4") ip = (ip as ipaddr.IPv4).toIPv4MappedAddress();
  const out = new Uint8Array(SOCKADDR_IN6_SIZE);
  const view = new DataView(out.buffer);
  view.setUint16(0, LINUX.AF_INET6, true);
  view.setUint16(2, address.port, false);
  out.set(ip.toByteArray(), 8);
  return out;
}

/** Decodes a sockaddr; v4-mapped IPv6 addresses come back as plain IPv4. */
export function decodeSockaddr(bytes: Uint8Array): SocketAddress {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = view.getUint16(0, true);
  const port = view.getUint16(2, false);
  if (family === LINUX.AF_INET) {
    return { hostname: ipaddr.fromByteArray([...bytes.subarray(4, 8)]).toString(), port };
  }
  if (family === LINUX.AF_INET6) {
    const ip = ipaddr.fromByteArray([...bytes.subarray(8, 24)]) as ipaddr.IPv6;
    const plain = ip.isIPv4MappedAddress() ? ip.toIPv4Address() : ip;
    return { hostname: plain.toString(), port };
  }
  throw new Error(`unsupported socket address family ${family}`);
}

/** True when two sockaddrs hold the same address (compares their used bytes). */
export function sameSockaddr(a: Uint8Array, b: Uint8Array): boolean {
  const length = a[0] === LINUX.AF_INET ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * True for a sockaddr in 0.0.0.0/8 (plain or v4-mapped): addresses no UDP
 * packet can come from, used for peers reached through another transport
 * (a session's relay path).
 */
export function isVirtualSockaddr(sockaddr: Uint8Array): boolean {
  if (sockaddr[0] === LINUX.AF_INET) return sockaddr[4] === 0;
  for (let i = 8; i < 18; i++) if (sockaddr[i] !== 0) return false;
  return sockaddr[18] === 0xff && sockaddr[19] === 0xff && sockaddr[20] === 0;
}

/** The `index`-th virtual address (1 to 2^24-1): `0.a.b.c:1`. */
export function virtualAddress(index: number): SocketAddress {
  if (!Number.isInteger(index) || index < 1 || index >= 1 << 24) {
    throw new RangeError(`virtual address index ${index} out of range`);
  }
  return { hostname: `0.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`, port: 1 };
}
