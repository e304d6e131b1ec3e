/**
 * Rate limits for a STUN server's answers: a token bucket per source IP (all ports of one IP
 * share it, so a client cannot multiply its share by opening sockets) in a table of bounded
 * size, evicting the least recently seen source when full, and one bucket for all answers, so
 * the table's churn can never raise the total. Time comes from the caller.
 */
import { ipFromBytes, ipToBytes } from "./socket_address.ts";

/** Limits of a {@link SourceLimiter}. */
export interface SourceLimits {
  /** Answers per second per source IP. */
  perSourceRate: number;
  /** Answers a source IP may get at once (its bucket's size). */
  perSourceBurst: number;
  /** Most source IPs tracked; the least recently seen is forgotten beyond that. */
  maxSources: number;
  /** Answers per second in all; its burst is one second's worth. */
  globalRate: number;
}

/** Defaults: an RFC 5780 run sends about a dozen requests, retransmissions included. */
export const DEFAULT_SOURCE_LIMITS: Readonly<SourceLimits> = {
  perSourceRate: 10,
  perSourceBurst: 40,
  maxSources: 4096,
  globalRate: 2000,
};

/** What the limiter decided for one answer. */
export type LimitVerdict = "allowed" | "source-limited" | "global-limited";

interface Bucket {
  tokens: number;
  updatedMs: number;
}

function refill(bucket: Bucket, rate: number, burst: number, nowMs: number): void {
  const elapsed = Math.max(0, nowMs - bucket.updatedMs);
  bucket.tokens = Math.min(burst, bucket.tokens + (elapsed * rate) / 1000);
  bucket.updatedMs = nowMs;
}

/** Per-source and global token buckets; the per-source table never holds more than `maxSources`. */
export class SourceLimiter {
  readonly limits: Readonly<SourceLimits>;
  /** Sources forgotten to make room for new ones. */
  evictions = 0;
  readonly #sources = new Map<string, Bucket>();
  readonly #global: Bucket;

  constructor(limits: Partial<SourceLimits> = {}, nowMs = performance.now()) {
    const merged = { ...DEFAULT_SOURCE_LIMITS, ...limits };
    for (const [name, value] of Object.entries(merged)) {
      if (!Number.isFinite(value) || value <= 0) {
        throw new RangeError(`STUN rate limit ${name} must be a positive number, not ${value}`);
      }
    }
    if (!Number.isInteger(merged.maxSources)) {
      throw new RangeError(`maxSources must be an integer, not ${merged.maxSources}`);
    }
    this.limits = merged;
    this.#global = { tokens: merged.globalRate, updatedMs: nowMs };
  }

  /** Source IPs tracked now (at most `limits.maxSources`). */
  get size(): number {
    return this.#sources.size;
  }

  /** Takes a token for an answer to `ip` if both its bucket and the global one have one. */
  take(ip: string, nowMs = performance.now()): LimitVerdict {
    const { perSourceRate, perSourceBurst, maxSources, globalRate } = this.limits;
    const key = canonical(ip);
    let bucket = this.#sources.get(key);
    if (bucket) {
      this.#sources.delete(key); // Re-inserted below: the Map's order is recency.
      refill(bucket, perSourceRate, perSourceBurst, nowMs);
    } else {
      bucket = { tokens: perSourceBurst, updatedMs: nowMs };
      while (this.#sources.size >= maxSources) {
        this.#sources.delete(this.#sources.keys().next().value!);
        this.evictions++;
      }
    }
    this.#sources.set(key, bucket);
    if (bucket.tokens < 1) return "source-limited";
    refill(this.#global, globalRate, globalRate, nowMs);
    if (this.#global.tokens < 1) return "global-limited";
    bucket.tokens -= 1;
    this.#global.tokens -= 1;
    return "allowed";
  }
}

/** One key per IP whatever its text ("::ffff:1.2.3.4" is 1.2.3.4). */
function canonical(ip: string): string {
  try {
    return ipFromBytes(ipToBytes(ip));
  } catch {
    return ip;
  }
}
