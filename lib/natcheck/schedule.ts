/**
 * Retransmission schedules of a NAT check, RFC 8489 §6.2.1 in shape (a doubling timeout, a
 * bounded number of transmissions, a last wait) but sized for a check that must finish in
 * about a second on a LAN: test I, before any round trip is known, starts at twice the minimum
 * timeout and goes on until the caller's limit; the tests after it start at three round trips
 * (at least the minimum, at most a second), send four times and give up at 11 timeouts.
 */
import type { RetransmitSchedule } from "./stun_client.ts";

/** The smallest retransmission timeout, by default. */
export const DEFAULT_MIN_RTO_MS = 100;
/** How long test I may wait for its answer, by default. */
export const DEFAULT_TIMEOUT_MS = 3_000;
/** The largest timeout of the later tests. */
const MAX_RTO_MS = 1_000;

/** Test I's schedule: RTO 2 × `minRtoMs`, RFC 8489's 7 transmissions, all within `timeoutMs`. */
export function firstTestSchedule(minRtoMs: number, timeoutMs: number): RetransmitSchedule {
  return { rtoMs: 2 * minRtoMs, transmissions: 7, giveUpMs: timeoutMs };
}

/**
 * The later tests' schedule from test I's round trip (undefined when test I needed a
 * retransmission, Karn's rule): transmissions at 0, R, 3R and 7R, giving up at 11R, with
 * R = 3 × RTT clamped to [minRtoMs, 1 s] (2 × minRtoMs without an RTT).
 */
export function laterTestSchedule(rttMs: number | undefined, minRtoMs: number): RetransmitSchedule {
  const rto = rttMs === undefined
    ? 2 * minRtoMs
    : Math.min(MAX_RTO_MS, Math.max(minRtoMs, Math.ceil(3 * rttMs)));
  return { rtoMs: rto, transmissions: 4, giveUpMs: 11 * rto };
}
