/**
 * Anti-replay for packet counters (the sliding window of RFC 6479 / WireGuard):
 * each counter is accepted at most once, and counters more than the window
 * behind the highest accepted one are refused.
 */

/** Counters this far behind the highest accepted one can still arrive late. */
export const REPLAY_WINDOW = 64;

/** A sliding window over a peer's 32-bit packet counters. */
export class ReplayWindow {
  #highest = -1;
  /** Bit i set: counter `highest - i` was accepted. */
  #seen = 0n;

  /** Records `counter`; returns false for a replay or a counter too old to tell. */
  accept(counter: number): boolean {
    if (!Number.isInteger(counter) || counter < 0 || counter > 0xffff_ffff) return false;
    if (counter > this.#highest) {
      const shift = counter - this.#highest;
      this.#seen = shift >= REPLAY_WINDOW ? 1n : ((this.#seen << BigInt(shift)) | 1n) &
        ((1n << BigInt(REPLAY_WINDOW)) - 1n);
      this.#highest = counter;
      return true;
    }
    const behind = this.#highest - counter;
    if (behind >= REPLAY_WINDOW) return false;
    const bit = 1n << BigInt(behind);
    if (this.#seen & bit) return false;
    this.#seen |= bit;
    return true;
  }
}
