/**
 * The sender's SACK scoreboard (RFC 6675, simplified): which bytes above SND.UNA the peer
 * reported holding; `SentSegments` marks its segments SACKed from it, so loss recovery
 * resends only the holes, several per round trip.
 */
import { seqAdd, seqDiff } from "../packet/mod.ts";

/** Most disjoint ranges kept; beyond it the lowest ones win (they matter for recovery). */
const MAX_RANGES = 64;

/** SACKed ranges of one connection, as [start, end) sequence numbers, sorted and disjoint. */
export class SackScoreboard {
  #ranges: Array<[number, number]> = [];

  /** The SACKed ranges, [start, end) sequence numbers, ascending. */
  get ranges(): ReadonlyArray<readonly [number, number]> {
    return this.#ranges;
  }

  /** Whether nothing is SACKed. */
  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  /**
   * Adds the peer's SACK blocks, ignoring any outside (sndUna, sndMax] (D-SACKs, stale or
   * bogus blocks). Returns whether they covered bytes not SACKed before.
   */
  update(
    blocks: ReadonlyArray<readonly [number, number]>,
    sndUna: number,
    sndMax: number,
  ): boolean {
    const limit = seqDiff(sndMax, sndUna);
    let grew = false;
    for (const [left, right] of blocks) {
      const start = seqDiff(left, sndUna);
      const end = seqDiff(right, sndUna);
      if (start <= 0 || end <= start || end > limit) continue;
      grew = this.#add(start, end, sndUna) || grew;
    }
    return grew;
  }

  /** The cumulative ACK moved to `sndUna`: forgets everything below it. */
  acknowledge(sndUna: number): void {
    const ranges = this.#ranges;
    let drop = 0;
    while (drop < ranges.length && seqDiff(ranges[drop][1], sndUna) <= 0) drop++;
    if (drop > 0) ranges.splice(0, drop);
    if (ranges.length > 0 && seqDiff(ranges[0][0], sndUna) < 0) ranges[0][0] = sndUna;
  }

  /** Forgets everything (after a retransmission timeout, RFC 2018 §8). */
  clear(): void {
    this.#ranges = [];
  }

  /** Merges [start, end) (offsets from `base`); returns whether new bytes were covered. */
  #add(start: number, end: number, base: number): boolean {
    const ranges = this.#ranges;
    let i = 0;
    while (i < ranges.length && seqDiff(ranges[i][1], base) < start) i++;
    let mergedStart = start;
    let mergedEnd = end;
    let covered = 0;
    let j = i;
    while (j < ranges.length && seqDiff(ranges[j][0], base) <= end) {
      const rangeStart = seqDiff(ranges[j][0], base);
      const rangeEnd = seqDiff(ranges[j][1], base);
      covered += Math.min(rangeEnd, end) - Math.max(rangeStart, start);
      mergedStart = Math.min(mergedStart, rangeStart);
      mergedEnd = Math.max(mergedEnd, rangeEnd);
      j++;
    }
    ranges.splice(i, j - i, [seqAdd(base, mergedStart), seqAdd(base, mergedEnd)]);
    if (ranges.length > MAX_RANGES) ranges.pop();
    return covered < end - start;
  }
}
