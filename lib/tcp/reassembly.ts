/**
 * Out-of-order received data: non-overlapping copied pieces kept in sequence order, at most
 * `maxPieces` of them, handed back once the gap before them is filled. Also the source of SACK
 * blocks (RFC 2018).
 */
import { seqAdd, seqDiff } from "../packet/mod.ts";

interface Piece {
  seq: number;
  data: Uint8Array;
}

/** What `insert` did with a segment. */
export type InsertResult = "stored" | "duplicate" | "full";

/** The out-of-order buffer of one connection. */
export class Reassembly {
  readonly #maxPieces: number;
  #pieces: Piece[] = [];
  /** Sequence number of the most recently stored segment (its SACK block goes first). */
  #latest = 0;

  constructor(maxPieces: number) {
    this.#maxPieces = maxPieces;
  }

  /** Whether nothing is buffered. */
  get empty(): boolean {
    return this.#pieces.length === 0;
  }

  /**
   * Stores the parts of `data` (at `seq`, after `rcvNxt`) not already held, copying them.
   * The whole segment is refused ("full") if that would exceed the piece limit.
   */
  insert(seq: number, data: Uint8Array, rcvNxt: number): InsertResult {
    const start = seqDiff(seq, rcvNxt);
    const end = start + data.length;
    const fresh: Array<[number, number]> = [];
    let cursor = start;
    for (const piece of this.#pieces) {
      const pieceStart = seqDiff(piece.seq, rcvNxt);
      const pieceEnd = pieceStart + piece.data.length;
      if (pieceEnd <= cursor) continue;
      if (pieceStart >= end) break;
      if (pieceStart > cursor) fresh.push([cursor, pieceStart]);
      cursor = Math.max(cursor, pieceEnd);
      if (cursor >= end) break;
    }
    if (cursor < end) fresh.push([cursor, end]);
    if (fresh.length === 0) return "duplicate";
    if (this.#pieces.length + fresh.length > this.#maxPieces) return "full";
    for (const [from, to] of fresh) {
      const piece = {
        seq: seqAdd(rcvNxt, from),
        data: data.slice(from - start, to - start),
      };
      let at = this.#pieces.length;
      while (at > 0 && seqDiff(this.#pieces[at - 1].seq, rcvNxt) > from) at--;
      this.#pieces.splice(at, 0, piece);
    }
    this.#latest = seq;
    return "stored";
  }

  /**
   * Removes and returns the data now next in sequence at `rcvNxt` (trimmed of any part
   * before it), or undefined when a gap remains. Pieces wholly before `rcvNxt` are dropped.
   */
  next(rcvNxt: number): Uint8Array | undefined {
    while (this.#pieces.length > 0) {
      const piece = this.#pieces[0];
      const start = seqDiff(piece.seq, rcvNxt);
      if (start > 0) return undefined;
      this.#pieces.shift();
      if (start + piece.data.length > 0) return piece.data.subarray(-start);
    }
    return undefined;
  }

  /**
   * Up to `max` SACK blocks ([left, right) sequence numbers) of the buffered data, adjacent
   * pieces merged; the block holding the most recently stored segment comes first.
   */
  sackBlocks(max: number): Array<[number, number]> {
    const blocks: Array<[number, number]> = [];
    for (const piece of this.#pieces) {
      const end = seqAdd(piece.seq, piece.data.length);
      const last = blocks[blocks.length - 1];
      if (last && last[1] === piece.seq) last[1] = end;
      else blocks.push([piece.seq, end]);
    }
    const latest = blocks.findIndex(([left, right]) =>
      seqDiff(this.#latest, left) >= 0 && seqDiff(right, this.#latest) > 0
    );
    if (latest > 0) blocks.unshift(...blocks.splice(latest, 1));
    return blocks.slice(0, max);
  }

  /** Drops everything. */
  clear(): void {
    this.#pieces = [];
  }
}
