/**
 * In-order received bytes the application has not read yet, copied into blocks of 16 KiB (so
 * a window of small segments costs a few allocations, not one per segment).
 */

/** Bytes per block (a larger segment gets a block of its own size). */
const BLOCK = 16 * 1024;
/** Largest chunk `take` builds by joining blocks. */
const MAX_JOINED = 64 * 1024;

/** A block: bytes `[start, end)` of `bytes` are unread. */
interface Block {
  bytes: Uint8Array;
  start: number;
  end: number;
}

/** A FIFO of received bytes with a byte count. */
export class ReceiveQueue {
  #blocks: Block[] = [];
  #bytes = 0;

  /** Unread bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends a copy of `data`. */
  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#bytes += data.length;
    const last = this.#blocks[this.#blocks.length - 1];
    let at = 0;
    if (last && last.end < last.bytes.length) {
      at = Math.min(data.length, last.bytes.length - last.end);
      last.bytes.set(data.subarray(0, at), last.end);
      last.end += at;
    }
    if (at === data.length) return;
    const rest = data.subarray(at);
    const bytes = new Uint8Array(Math.max(BLOCK, rest.length));
    bytes.set(rest);
    this.#blocks.push({ bytes, start: 0, end: rest.length });
  }

  /**
   * Removes and returns the next bytes, up to 64 KiB: a view of the first block when it holds
   * them, else a copy joining blocks. Undefined when empty.
   */
  take(): Uint8Array | undefined {
    if (this.#bytes === 0) return undefined;
    const blocks = this.#blocks;
    const first = blocks[0];
    if (blocks.length === 1 || first.end - first.start >= MAX_JOINED) {
      const length = Math.min(first.end - first.start, MAX_JOINED);
      const out = first.bytes.subarray(first.start, first.start + length);
      this.#consume(length);
      return out;
    }
    let size = 0;
    for (const block of blocks) {
      size += block.end - block.start;
      if (size >= MAX_JOINED) break;
    }
    const out = new Uint8Array(Math.min(size, MAX_JOINED));
    for (let at = 0; at < out.length;) {
      const block = blocks[0];
      const n = Math.min(block.end - block.start, out.length - at);
      out.set(block.bytes.subarray(block.start, block.start + n), at);
      at += n;
      this.#consume(n);
    }
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.#blocks = [];
    this.#bytes = 0;
  }

  /** Marks `n` bytes of the first block read, dropping it once done. */
  #consume(n: number): void {
    const first = this.#blocks[0];
    first.start += n;
    this.#bytes -= n;
    if (first.start === first.end) {
      if (this.#blocks.length === 1) {
        // Keep appending after what was handed out; a fresh block once it is full.
        return;
      }
      this.#blocks.shift();
    }
  }
}
