/**
 * TCP sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4, RFC 1982). Comparisons are only
 * meaningful between numbers less than 2^31 apart; exactly 2^31 apart, each is "less" than
 * the other.
 */

/** `a + n` modulo 2^32, as an unsigned 32-bit number. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** The signed distance `a - b` in [-2^31, 2^31): how far `a` is ahead of `b`. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** Whether `a` comes before `b`. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** Whether `a` comes before or equals `b`. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** Whether `a` comes after `b`. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** Whether `a` comes after or equals `b`. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}
