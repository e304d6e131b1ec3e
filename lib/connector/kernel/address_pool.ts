/**
 * The kernel mode's pool of inner addresses: every session gets one IPv4 address of its own
 * from a private prefix (default 100.127.0.0/16), so that agents whose TUNs all use the same
 * source (every agent defaults to 100.64.0.1) stay apart in the connector's kernel, its
 * conntrack table and the targets' logs. The prefix's first host address is the TUN's own;
 * the network and broadcast addresses are never handed out. Addresses are handed out round
 * robin, so a released one is reused as late as possible (its old conntrack entries, if any,
 * have the longest time to expire).
 */
import { formatIpAddress, parseIpAddress } from "../../packet/mod.ts";

/** The default prefix of the pool. */
export const DEFAULT_POOL = "100.127.0.0/16";

/** A parsed IPv4 prefix: its network address as an unsigned 32-bit number and its length. */
export interface Ipv4Prefix {
  network: number;
  length: number;
}

/** An unsigned 32-bit number from four address bytes. */
export function ipv4ToNumber(bytes: Uint8Array): number {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

/** The dotted text of an address given as an unsigned 32-bit number. */
export function numberToIpv4(value: number): string {
  return formatIpAddress(
    Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff),
  );
}

/** Parses `a.b.c.d/N` (N 8-30, no host bits); throws a RangeError naming the text. */
export function parseIpv4Prefix(text: string): Ipv4Prefix {
  const match = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(text);
  let bytes: Uint8Array | undefined;
  try {
    bytes = match ? parseIpAddress(match[1]) : undefined;
  } catch {
    bytes = undefined;
  }
  const length = match ? Number(match[2]) : NaN;
  if (!bytes || bytes.length !== 4 || !(length >= 8 && length <= 30)) {
    throw new RangeError(`invalid address pool "${text}": expected an IPv4 a.b.c.d/8-30`);
  }
  const network = ipv4ToNumber(bytes);
  const mask = (0xffffffff << (32 - length)) >>> 0;
  if ((network & ~mask) >>> 0 !== 0) {
    throw new RangeError(`invalid address pool "${text}": host bits are set`);
  }
  return { network, length };
}

/** Hands out the addresses of a prefix to sessions, one each. */
export class AddressPool {
  /** The prefix, as given. */
  readonly prefix: string;
  /** The TUN's own address: the prefix's first host address. */
  readonly gateway: number;
  /** How many sessions the pool can hold at once. */
  readonly capacity: number;
  readonly #first: number;
  readonly #inUse = new Set<number>();
  #next = 0;

  /** A pool over `prefix` (`a.b.c.d/N`). */
  constructor(prefix: string = DEFAULT_POOL) {
    const { network, length } = parseIpv4Prefix(prefix);
    this.prefix = prefix;
    this.gateway = network + 1;
    this.#first = network + 2;
    // All but the network, the gateway and the broadcast address.
    this.capacity = 2 ** (32 - length) - 3;
  }

  /** Addresses handed out and not yet released. */
  get size(): number {
    return this.#inUse.size;
  }

  /** A free address (an unsigned 32-bit number), or null when all are taken. */
  allocate(): number | null {
    if (this.#inUse.size >= this.capacity) return null;
    for (;;) {
      const address = this.#first + this.#next;
      this.#next = (this.#next + 1) % this.capacity;
      if (!this.#inUse.has(address)) {
        this.#inUse.add(address);
        return address;
      }
    }
  }

  /** Gives `address` back; releasing one not handed out does nothing. */
  release(address: number): void {
    this.#inUse.delete(address);
  }
}
