/**
 * A bounded FIFO of bytes with random-access reads: the send buffer. Storage is allocated on
 * the first push, starts small and doubles on demand up to the limit, so idle connections
 * (and those that only receive) stay cheap.
 */

/** Bytes of storage the first push allocates at least. */
const INITIAL_STORAGE = 16 * 1024;

/** A byte queue holding at most `limit` bytes. */
export class ByteRing {
  /** Most bytes held at once. */
  readonly limit: number;
  #storage: Uint8Array;
  #head = 0;
  #length = 0;

  constructor(limit: number) {
    this.limit = limit;
    this.#storage = new Uint8Array(0);
  }

  /** Bytes held. */
  get length(): number {
    return this.#length;
  }

  /** Bytes that may still be pushed. */
  get free(): number {
    return this.limit - this.#length;
  }

  /** Appends as much of `data` as fits and returns how many bytes that was. */
  push(data: Uint8Array): number {
    const count = Math.min(data.length, this.free);
    if (count === 0) return 0;
    this.#reserve(this.#length + count);
    const storage = this.#storage;
    const tail = (this.#head + this.#length) % storage.length;
    const first = Math.min(count, storage.length - tail);
    storage.set(data.subarray(0, first), tail);
    if (first < count) storage.set(data.subarray(first, count), 0);
    this.#length += count;
    return count;
  }

  /** Copies `length` bytes starting `offset` bytes into the queue to `out[at]`. */
  copyTo(offset: number, length: number, out: Uint8Array, at: number): void {
    if (offset < 0 || length < 0 || offset + length > this.#length) {
      throw new RangeError(
        `reading bytes ${offset}-${offset + length} of a ${this.#length}-byte ring`,
      );
    }
    const storage = this.#storage;
    const start = (this.#head + offset) % storage.length;
    const first = Math.min(length, storage.length - start);
    out.set(storage.subarray(start, start + first), at);
    if (first < length) out.set(storage.subarray(0, length - first), at + first);
  }

  /** Drops the first `count` bytes (at most all of them). */
  discard(count: number): void {
    const n = Math.min(count, this.#length);
    this.#length -= n;
    this.#head = this.#length === 0 ? 0 : (this.#head + n) % this.#storage.length;
  }

  /** Drops everything and frees the storage; the ring stays usable. */
  clear(): void {
    this.#head = 0;
    this.#length = 0;
    this.#storage = new Uint8Array(0);
  }

  #reserve(needed: number): void {
    const old = this.#storage;
    if (needed <= old.length) return;
    const size = Math.min(this.limit, Math.max(needed, old.length * 2, INITIAL_STORAGE));
    const storage = new Uint8Array(size);
    const first = Math.min(this.#length, old.length - this.#head);
    storage.set(old.subarray(this.#head, this.#head + first), 0);
    if (first < this.#length) storage.set(old.subarray(0, this.#length - first), first);
    this.#storage = storage;
    this.#head = 0;
  }
}
