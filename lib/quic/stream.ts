/**
 * A bidirectional QUIC stream with promise-based reads and writes. Data stays in
 * quiche until it is read, so an idle reader holds back the peer through QUIC
 * flow control; a write resolves once quiche has taken every byte.
 */

/** What a stream needs from its connection (implemented by Connection). */
export interface StreamHost {
  /** Reads into `into`; returns bytes read, 0 with `fin`, or -1 when nothing is ready. Throws on reset. */
  streamRecv(id: number, into: Uint8Array): { length: number; fin: boolean };
  /** Writes what fits; returns bytes taken. Throws when the peer stopped the stream. */
  streamSend(id: number, data: Uint8Array, fin: boolean): number;
  /** Asks the endpoint to send what the stream queued. */
  wake(): void;
  /** Called when both directions of a stream are done. */
  streamDone(id: number): void;
}

interface PendingWrite {
  data: Uint8Array;
  offset: number;
  fin: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

const READ_CHUNK = 64 * 1024;

/** One bidirectional stream of a connection. */
export class QuicStream {
  /** The QUIC stream ID. */
  readonly id: number;
  readonly #host: StreamHost;
  #reader: { resolve: (chunk: Uint8Array | null) => void; reject: (e: Error) => void } | null =
    null;
  #write: PendingWrite | null = null;
  #readDone = false;
  #writeDone = false;
  #error: Error | null = null;

  /**
   * Whether quiche knows the stream: a stream we open exists there only once we
   * send on it, so reading before that waits instead of failing.
   */
  #known: boolean;

  /** For Connection: wraps stream `id` of `host`; `local` for a stream this end opens. */
  constructor(id: number, host: StreamHost, local = false) {
    this.id = id;
    this.#host = host;
    this.#known = !local;
  }

  /** The next chunk of data, or null once the peer finished the stream. */
  read(): Promise<Uint8Array | null> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#readDone) return Promise.resolve(null);
    if (this.#reader) return Promise.reject(new Error(`stream ${this.id}: read already pending`));
    const ready = this.#tryRead();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => this.#reader = { resolve, reject });
  }

  /** Reads until the peer finishes the stream and returns all bytes. */
  async readAll(limit = 64 << 20): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (let chunk = await this.read(); chunk; chunk = await this.read()) {
      total += chunk.length;
      if (total > limit) throw new Error(`stream ${this.id}: more than ${limit} bytes`);
      chunks.push(chunk);
    }
    const out = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  /** Writes `data` (and with `fin`, ends our direction); resolves when quiche took it all. */
  write(data: Uint8Array, fin = false): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#writeDone) return Promise.reject(new Error(`stream ${this.id}: write after finish`));
    if (this.#write) return Promise.reject(new Error(`stream ${this.id}: write already pending`));
    return new Promise((resolve, reject) => {
      this.#write = { data, offset: 0, fin, resolve, reject };
      this.notifyWritable();
    });
  }

  /** Ends our direction of the stream (sends FIN). */
  close(): Promise<void> {
    return this.#writeDone ? Promise.resolve() : this.write(new Uint8Array(0), true);
  }

  /** For Connection: the peer sent data or FIN. */
  notifyReadable(): void {
    if (!this.#reader) return;
    const chunk = this.#tryRead();
    if (chunk === undefined) return;
    const reader = this.#reader;
    this.#reader = null;
    reader.resolve(chunk);
  }

  /** For Connection: flow control may have opened; continue a pending write. */
  notifyWritable(): void {
    const pending = this.#write;
    if (!pending) return;
    try {
      const rest = pending.data.subarray(pending.offset);
      const taken = this.#host.streamSend(this.id, rest, pending.fin);
      this.#known = true;
      pending.offset += taken;
      if (taken > 0 || rest.length === 0) this.#host.wake();
      if (pending.offset < pending.data.length) return;
      this.#write = null;
      if (pending.fin) this.#finish("write");
      pending.resolve();
    } catch (error) {
      this.fail(error as Error);
    }
  }

  /** True while a write waits for flow-control credit. */
  get writeBlocked(): boolean {
    return this.#write !== null;
  }

  /** For Connection: the stream or its connection failed; pending calls reject. */
  fail(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    this.#reader?.reject(error);
    this.#write?.reject(error);
    this.#reader = null;
    this.#write = null;
  }

  #tryRead(): Uint8Array | null | undefined {
    if (!this.#known) return undefined;
    const buffer = new Uint8Array(READ_CHUNK);
    let result: { length: number; fin: boolean };
    try {
      result = this.#host.streamRecv(this.id, buffer);
    } catch (error) {
      this.fail(error as Error);
      throw error;
    }
    if (result.length < 0) return undefined;
    // Reading frees flow-control credit: let the endpoint send the window update now,
    // or a peer blocked on it waits for an unrelated packet (or the idle timeout).
    this.#host.wake();
    if (result.length === 0 && result.fin) {
      this.#finish("read");
      return null;
    }
    if (result.fin) {
      // Data and FIN together: hand out the data now, report the end on the next read.
      this.#finish("read");
    }
    return buffer.subarray(0, result.length);
  }

  #finish(direction: "read" | "write"): void {
    if (direction === "read") this.#readDone = true;
    else this.#writeDone = true;
    if (this.#readDone && this.#writeDone) this.#host.streamDone(this.id);
  }
}
