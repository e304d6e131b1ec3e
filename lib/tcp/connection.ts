/**
 * The application's view of an accepted TCP connection: a byte stream each way with
 * back-pressure. Reading frees receive-buffer space (the advertised window reopens); writes
 * wait while the send buffer is full.
 */
import type { TcpConnectionError } from "./errors.ts";
import type { TcpFlow } from "./flow.ts";
import { acceptsWrites, type TcpState } from "./state.ts";
import type { Tcb } from "./tcb.ts";

/** An accepted connection. */
export class TcpConnection {
  /** The peer's and our addresses as the peer's SYN carried them. */
  readonly flow: TcpFlow;
  /**
   * Bytes from the peer. Closes after the peer's FIN; errors with a `TcpConnectionError` on a
   * reset, timeout or abort. Cancelling it aborts the connection (RST) unless the peer had
   * already finished sending and everything was read.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * Bytes to the peer. A write resolves once its bytes are in the send buffer (so writes
   * wait while it is full); `close()` sends our FIN after the data and resolves when the
   * peer has acknowledged everything; `abort()` resets the connection.
   */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Resolves when the connection ended normally (both FINs exchanged and acknowledged);
   * rejects with a `TcpConnectionError` if it failed. Never an unhandled rejection.
   */
  readonly closed: Promise<void>;

  readonly #tcb: Tcb;
  #reader: ReadableStreamDefaultController<Uint8Array> | undefined;
  #readDone = false;
  #pullWaiter: (() => void) | undefined;
  #writeWaiter: (() => void) | undefined;
  #closeWaiter: (() => void) | undefined;

  /** Wraps an established control block (the stack makes these). */
  constructor(tcb: Tcb) {
    this.#tcb = tcb;
    this.flow = tcb.flow;
    let settle: (error: TcpConnectionError | undefined) => void = () => {};
    this.closed = new Promise<void>((resolve, reject) => {
      settle = (error) => error ? reject(error) : resolve();
    });
    this.closed.catch(() => {});
    tcb.listener = {
      onReadable: () => this.#pump(),
      onWritable: () => this.#wake(),
      onClosed: (error) => {
        settle(error);
        this.#pump();
        this.#wake();
      },
    };
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#reader = controller;
      },
      pull: () => this.#pull(),
      cancel: (reason) => this.#cancel(reason),
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#write(chunk),
      close: () => this.#close(),
      abort: (reason) => this.#tcb.abort(`writer aborted: ${String(reason)}`, reason),
    });
  }

  /** The TCP state (RFC 9293 names with underscores). */
  get state(): TcpState {
    return this.#tcb.state;
  }

  /** Resets the connection now: RST to the peer; both streams fail. */
  abort(reason?: unknown): void {
    this.#tcb.abort(reason === undefined ? "by the application" : String(reason), reason);
  }

  #pull(): Promise<void> | void {
    if (this.#deliver()) return;
    return new Promise<void>((resolve) => {
      this.#pullWaiter = resolve;
    });
  }

  /** Enqueues data, or closes/errors the stream; false when there is nothing to do yet. */
  #deliver(): boolean {
    if (this.#readDone) return true;
    const tcb = this.#tcb;
    const reader = this.#reader!;
    if (tcb.error) {
      this.#readDone = true;
      reader.error(tcb.error);
      return true;
    }
    const chunk = tcb.read();
    if (chunk) {
      reader.enqueue(chunk);
      return true;
    }
    if (tcb.finReceived) {
      this.#readDone = true;
      reader.close();
      return true;
    }
    return false;
  }

  #pump(): void {
    const waiter = this.#pullWaiter;
    if (waiter && this.#deliver()) {
      this.#pullWaiter = undefined;
      waiter();
    }
  }

  #cancel(reason: unknown): void {
    this.#readDone = true;
    this.#pullWaiter = undefined;
    const tcb = this.#tcb;
    if (!tcb.finReceived || tcb.queue.bytes > 0) {
      tcb.abort(`reader cancelled: ${String(reason)}`, reason);
    }
    tcb.discardUnread();
  }

  #write(chunk: Uint8Array): Promise<void> | void {
    let offset = 0;
    /** Pushes more of the chunk; true once all of it is buffered. Throws if writing ended. */
    const step = (): boolean => {
      const tcb = this.#tcb;
      if (tcb.error) throw tcb.error;
      if (!acceptsWrites(tcb.state) || tcb.finQueued) {
        throw new Error(`TCP ${tcb.flowText}: cannot write in state ${tcb.state}`);
      }
      offset += tcb.write(offset === 0 ? chunk : chunk.subarray(offset));
      return offset === chunk.length;
    };
    if (step()) return;
    return new Promise<void>((resolve, reject) => {
      this.#writeWaiter = () => {
        try {
          if (!step()) return;
          this.#writeWaiter = undefined;
          resolve();
        } catch (error) {
          this.#writeWaiter = undefined;
          reject(error);
        }
      };
    });
  }

  #close(): Promise<void> {
    const tcb = this.#tcb;
    tcb.shutdownWrite();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (tcb.error) reject(tcb.error);
        else if (tcb.finAcked) resolve();
        else return;
        this.#closeWaiter = undefined;
      };
      this.#closeWaiter = check;
      check();
    });
  }

  #wake(): void {
    this.#writeWaiter?.();
    this.#closeWaiter?.();
  }
}
