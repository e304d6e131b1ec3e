/**
 * Out-of-order received data: copied segments kept in sequence order, at most `maxSegments`
 * of them (their bytes are bounded by the advertised window), handed back once the gap
 * before them is filled. Also the source of SACK blocks (RFC 2018).
 *
 * Segments that touch form one range, so the cost of an arrival or a SACK is in the number
 * of gaps, not of buffered segments: after a loss a whole window of segments arrives behind
 * one gap, each appended to the last range in constant time.
 */
import { seqAdd, seqDiff } from "../packet/mod.ts";

/** Contiguous buffered data: [start, end) sequence numbers, its segments in order. */
interface Range {
  start: number;
  end: number;
  chunks: Uint8Array[];
}

/** What `insert` did with a segment. */
export type InsertResult = "stored" | "duplicate" | "full";

/** The out-of-order buffer of one connection. */
export class Reassembly {
  readonly #maxSegments: number;
  /** Sorted, disjoint and never adjacent (ranges that come to touch are merged). */
  #ranges: Range[] = [];
  #segments = 0;
  /** Sequence number of the most recently stored segment (its SACK block goes first). */
  #latest = 0;

  constructor(maxSegments: number) {
    this.#maxSegments = maxSegments;
  }

  /** Whether nothing is buffered. */
  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  /**
   * Stores the parts of `data` (at `seq`, after `rcvNxt`) not already held, copying them.
   * The whole segment is refused ("full") if that would exceed the segment limit.
   */
  insert(seq: number, data: Uint8Array, rcvNxt: number): InsertResult {
    const start = seqDiff(seq, rcvNxt);
    const end = start + data.length;
    const ranges = this.#ranges;
    const last = ranges[ranges.length - 1];
    if (last === undefined || seqDiff(last.end, rcvNxt) <= start) {
      // The common case: at or past the end of everything held.
      if (this.#segments >= this.#maxSegments) return "full";
      const chunk = data.slice();
      if (last !== undefined && seqDiff(last.end, rcvNxt) === start) {
        last.chunks.push(chunk);
        last.end = seqAdd(last.end, chunk.length);
      } else {
        ranges.push({ start: seq, end: seqAdd(seq, chunk.length), chunks: [chunk] });
      }
      this.#segments++;
      this.#latest = seq;
      return "stored";
    }
    const fresh: Array<[number, number]> = [];
    let cursor = start;
    for (const range of ranges) {
      const rangeStart = seqDiff(range.start, rcvNxt);
      const rangeEnd = seqDiff(range.end, rcvNxt);
      if (rangeEnd <= cursor) continue;
      if (rangeStart >= end) break;
      if (rangeStart > cursor) fresh.push([cursor, rangeStart]);
      cursor = Math.max(cursor, rangeEnd);
      if (cursor >= end) break;
    }
    if (cursor < end) fresh.push([cursor, end]);
    if (fresh.length === 0) return "duplicate";
    if (this.#segments + fresh.length > this.#maxSegments) return "full";
    for (const [from, to] of fresh) {
      this.#place(seqAdd(rcvNxt, from), data.slice(from - start, to - start), rcvNxt);
    }
    this.#segments += fresh.length;
    this.#latest = seq;
    return "stored";
  }

  /** Puts `chunk` (at `seq`, overlapping nothing held) into its range, merging neighbours. */
  #place(seq: number, chunk: Uint8Array, rcvNxt: number): void {
    const ranges = this.#ranges;
    const from = seqDiff(seq, rcvNxt);
    const to = from + chunk.length;
    let i = 0;
    while (i < ranges.length && seqDiff(ranges[i].start, rcvNxt) < from) i++;
    const before = ranges[i - 1];
    const after = ranges[i];
    const joinsBefore = before !== undefined && seqDiff(before.end, rcvNxt) === from;
    const joinsAfter = after !== undefined && seqDiff(after.start, rcvNxt) === to;
    if (joinsBefore && joinsAfter) {
      before.chunks.push(chunk, ...after.chunks);
      before.end = after.end;
      ranges.splice(i, 1);
    } else if (joinsBefore) {
      before.chunks.push(chunk);
      before.end = seqAdd(before.end, chunk.length);
    } else if (joinsAfter) {
      after.chunks.unshift(chunk);
      after.start = seq;
    } else {
      ranges.splice(i, 0, { start: seq, end: seqAdd(seq, chunk.length), chunks: [chunk] });
    }
  }

  /**
   * Removes and returns the next buffered segment if it is now in sequence at `rcvNxt`
   * (trimmed of any part before it), or undefined when a gap remains. Segments wholly
   * before `rcvNxt` are dropped.
   */
  next(rcvNxt: number): Uint8Array | undefined {
    const ranges = this.#ranges;
    while (ranges.length > 0) {
      const first = ranges[0];
      const start = seqDiff(first.start, rcvNxt);
      if (start > 0) return undefined;
      const chunk = first.chunks.shift()!;
      this.#segments--;
      first.start = seqAdd(first.start, chunk.length);
      if (first.chunks.length === 0) ranges.shift();
      if (start + chunk.length > 0) return chunk.subarray(-start);
    }
    return undefined;
  }

  /**
   * Up to `max` SACK blocks ([left, right) sequence numbers) of the buffered data, one per
   * range; the block holding the most recently stored segment comes first.
   */
  sackBlocks(max: number): Array<[number, number]> {
    const ranges = this.#ranges;
    const latest = ranges.findIndex((range) =>
      seqDiff(this.#latest, range.start) >= 0 && seqDiff(range.end, this.#latest) > 0
    );
    const blocks: Array<[number, number]> = [];
    if (latest >= 0) blocks.push([ranges[latest].start, ranges[latest].end]);
    for (let i = 0; i < ranges.length && blocks.length < max; i++) {
      if (i !== latest) blocks.push([ranges[i].start, ranges[i].end]);
    }
    return blocks.slice(0, max);
  }

  /** Drops everything. */
  clear(): void {
    this.#ranges = [];
    this.#segments = 0;
  }
}
