/**
 * Bounds on QUIC handshakes in progress at a server: at most `maxTotal` at
 * once, and at most `maxPerAddress` from one source (an IPv4 address or an
 * IPv6 /64, whatever the port). The per-source table holds only sources with a
 * live handshake, so it never has more than `maxTotal` entries.
 */
import { LINUX } from "../../ffi/libc.ts";
import { cidKey } from "./connection_id.ts";

/** Why a handshake was refused: the endpoint's cap, or its source's. */
export type HandshakeRefusal = "total" | "per-address";

/**
 * The key a source is counted under: the IPv4 address (plain or v4-mapped
 * alike), or the first 64 bits of an IPv6 address, since one host commonly
 * holds a whole /64. The port is left out: a client picks any number of them.
 */
export function sourceKey(sockaddr: Uint8Array): string {
  if (sockaddr[0] === LINUX.AF_INET) return cidKey(sockaddr, 4, 4);
  let mapped = sockaddr[18] === 0xff && sockaddr[19] === 0xff;
  for (let i = 8; i < 18 && mapped; i++) mapped = sockaddr[i] === 0;
  return mapped ? cidKey(sockaddr, 20, 4) : `6${cidKey(sockaddr, 8, 8)}`;
}

/** Counts handshakes in progress by item (a connection) and by source. */
export class HandshakeLimits<T> {
  /** Most handshakes in progress at once. */
  readonly maxTotal: number;
  /** Most handshakes in progress from one source. */
  readonly maxPerAddress: number;
  readonly #sourceOf = new Map<T, string>();
  readonly #perSource = new Map<string, number>();

  /** Throws a RangeError unless both bounds are positive integers. */
  constructor(maxTotal: number, maxPerAddress: number) {
    for (
      const [name, value] of [["maxHandshakes", maxTotal], [
        "maxHandshakesPerAddress",
        maxPerAddress,
      ]] as const
    ) {
      if (!Number.isInteger(value) || value < 1) {
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
      }
    }
    this.maxTotal = maxTotal;
    this.maxPerAddress = maxPerAddress;
  }

  /** Handshakes in progress. */
  get size(): number {
    return this.#sourceOf.size;
  }

  /** Sources with a handshake in progress (at most `maxTotal`). */
  get sources(): number {
    return this.#perSource.size;
  }

  /** Why one more handshake from `source` (a `sourceKey`) would be refused, or null if it fits. */
  refusal(source: string): HandshakeRefusal | null {
    if (this.#sourceOf.size >= this.maxTotal) return "total";
    if ((this.#perSource.get(source) ?? 0) >= this.maxPerAddress) return "per-address";
    return null;
  }

  /** Counts `item`'s handshake from `source`; throws if it does not fit (see `refusal`). */
  add(item: T, source: string): void {
    const refused = this.refusal(source);
    if (refused !== null) throw new Error(`handshake over the ${refused} limit was added`);
    if (this.#sourceOf.has(item)) throw new Error("handshake added twice");
    this.#sourceOf.set(item, source);
    this.#perSource.set(source, (this.#perSource.get(source) ?? 0) + 1);
  }

  /** Stops counting `item` (its handshake completed or it is gone); false if it was not counted. */
  delete(item: T): boolean {
    const source = this.#sourceOf.get(item);
    if (source === undefined) return false;
    this.#sourceOf.delete(item);
    const left = this.#perSource.get(source)! - 1;
    if (left === 0) this.#perSource.delete(source);
    else this.#perSource.set(source, left);
    return true;
  }
}
