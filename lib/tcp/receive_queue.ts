/** In-order received bytes the application has not read yet, as copied chunks. */

/** Largest chunk `take` builds by joining smaller ones. */
const MAX_JOINED = 64 * 1024;

/** A FIFO of received chunks with a byte count. */
export class ReceiveQueue {
  #chunks: Uint8Array[] = [];
  #first = 0;
  #bytes = 0;

  /** Unread bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends a chunk (kept as is: pass a copy). */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
  }

  /**
   * Removes and returns the next bytes: the first chunk, joined with the following ones up to
   * 64 KiB so small segments reach the reader as fewer, larger chunks. Undefined when empty.
   */
  take(): Uint8Array | undefined {
    if (this.#bytes === 0) return undefined;
    const chunks = this.#chunks;
    let end = this.#first + 1;
    let size = chunks[this.#first].length;
    while (end < chunks.length && size + chunks[end].length <= MAX_JOINED) {
      size += chunks[end++].length;
    }
    let out: Uint8Array;
    if (end === this.#first + 1) {
      out = chunks[this.#first];
    } else {
      out = new Uint8Array(size);
      let at = 0;
      for (let i = this.#first; i < end; i++) {
        out.set(chunks[i], at);
        at += chunks[i].length;
      }
    }
    this.#first = end;
    this.#bytes -= size;
    if (this.#first === chunks.length) {
      this.#chunks = [];
      this.#first = 0;
    } else if (this.#first > 1024) {
      this.#chunks = chunks.slice(this.#first);
      this.#first = 0;
    }
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.#chunks = [];
    this.#first = 0;
    this.#bytes = 0;
  }
}
