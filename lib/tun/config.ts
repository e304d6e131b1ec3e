/** Validation of TUN device options: name, MTU, addresses and routes as typed prefixes. */
import ipaddr from "ipaddr.js";

/** What `TunDevice.create` is asked for. */
export interface TunOptions {
  /** Interface name, at most 15 bytes (`%d` lets the kernel pick a number). Default `ztna0`. */
  name?: string;
  /** Default 1280 (the IPv6 minimum, safe inside any tunnel). */
  mtu?: number;
  /** Interface addresses in CIDR form, e.g. `100.64.0.1/32`; at most one IPv4. */
  addresses?: string[];
  /** Destinations routed into the device, e.g. `100.80.0.0/16`; no host bits. */
  routes?: string[];
  /**
   * Ask for TUN offloads (virtio headers, TSO/USO super-packets in, GRO'd
   * TCP out); plain mode when the kernel refuses. Default false.
   */
  offloads?: boolean;
}

/** An IP prefix: the address bytes (4 or 16) and the prefix length. */
export interface Prefix {
  family: 4 | 6;
  bytes: Uint8Array;
  length: number;
  /** As written by the caller, for error messages. */
  text: string;
}

/** Validated options. */
export interface TunConfig {
  name: string;
  mtu: number;
  addresses: Prefix[];
  routes: Prefix[];
  offloads: boolean;
}

/** Longest interface name the kernel accepts (IFNAMSIZ - 1). */
const MAX_NAME_BYTES = 15;

/** Parses and checks `options`; every error names the offending value. */
export function parseTunConfig(options: TunOptions): TunConfig {
  const name = options.name ?? "ztna0";
  checkName(name);
  const addresses = (options.addresses ?? []).map((text) => parsePrefix(text, "address"));
  const routes = (options.routes ?? []).map((text) => parsePrefix(text, "route"));
  if (addresses.filter((a) => a.family === 4).length > 1) {
    throw new Error(
      `TUN device ${name}: at most one IPv4 address is supported (SIOCSIFADDR replaces the ` +
        `primary address); got ${options.addresses?.join(", ")}`,
    );
  }
  for (const route of routes) checkNoHostBits(route);
  const mtu = options.mtu ?? 1280;
  const minimum = addresses.some((a) => a.family === 6) ? 1280 : 68;
  if (!Number.isInteger(mtu) || mtu < minimum || mtu > 65535) {
    throw new RangeError(
      `TUN device ${name}: MTU ${mtu} is out of range ${minimum}-65535` +
        (minimum === 1280 ? " (IPv6 needs at least 1280)" : ""),
    );
  }
  return { name, mtu, addresses, routes, offloads: options.offloads ?? false };
}

function checkName(name: string): void {
  const bytes = new TextEncoder().encode(name).length;
  if (
    bytes === 0 || bytes > MAX_NAME_BYTES || name === "." || name === ".." ||
    !/^[A-Za-z0-9_.%-]+$/.test(name)
  ) {
    throw new Error(
      `invalid TUN device name "${name}": use 1-${MAX_NAME_BYTES} characters from ` +
        `A-Z a-z 0-9 _ . - (and %d)`,
    );
  }
}

/** Parses `ADDRESS/LENGTH`; `what` ("address" or "route") goes into error messages. */
export function parsePrefix(text: string, what: string): Prefix {
  const slash = text.indexOf("/");
  const host = slash < 0 ? "" : text.slice(0, slash);
  const lengthText = slash < 0 ? "" : text.slice(slash + 1);
  const family = ipaddr.IPv4.isValidFourPartDecimal(host)
    ? 4
    : ipaddr.IPv6.isValid(host) && host.includes(":")
    ? 6
    : 0;
  const length = Number(lengthText);
  if (
    family === 0 || !/^\d{1,3}$/.test(lengthText) || length > (family === 4 ? 32 : 128)
  ) {
    throw new Error(
      `invalid TUN ${what} "${text}": expected IPv4 a.b.c.d/0-32 or IPv6 x:x::x/0-128`,
    );
  }
  return { family, bytes: Uint8Array.from(ipaddr.parse(host).toByteArray()), length, text };
}

function checkNoHostBits(prefix: Prefix): void {
  for (let bit = prefix.length; bit < prefix.bytes.length * 8; bit++) {
    if (prefix.bytes[bit >> 3] & (0x80 >> (bit & 7))) {
      const network = maskedText(prefix);
      throw new Error(
        `invalid TUN route "${prefix.text}": host bits are set (did you mean ${network}?)`,
      );
    }
  }
}

function maskedText(prefix: Prefix): string {
  const bytes = prefix.bytes.map((byte, i) => {
    const keep = Math.max(0, Math.min(8, prefix.length - i * 8));
    return byte & (0xff << (8 - keep));
  });
  const address = prefix.family === 4
    ? new ipaddr.IPv4(Array.from(bytes))
    : ipaddr.fromByteArray(Array.from(bytes));
  return `${address.toString()}/${prefix.length}`;
}

/** The IPv4 netmask bytes for a prefix length, e.g. 24 → 255.255.255.0. */
export function ipv4Netmask(length: number): Uint8Array {
  const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
  return Uint8Array.of(mask >>> 24, (mask >>> 16) & 0xff, (mask >>> 8) & 0xff, mask & 0xff);
}
