/** The device's side of the reader worker: start it, hand packets on, stop it. */
import { libc, syscallError } from "../../ffi/libc.ts";
import { forEachPacket, type ReaderMessage, type ReaderStart, ReaderState } from "./batch.ts";

/** How long `stop()` waits for the worker to confirm before giving up on it. */
const STOP_TIMEOUT_MS = 2_000;

/** A running reader worker for one TUN descriptor. */
export class TunReader {
  readonly #worker: Worker;
  readonly #state: Int32Array;
  readonly #eventFd: number;
  readonly #name: string;
  #stopping = false;
  /** Settles when the worker has ended: resolved on a clean stop, rejected on a read error. */
  readonly done: Promise<void>;

  /** The worker's counter at `slot` (a `ReaderState` counter slot). */
  counter(slot: number): number {
    return Atomics.load(this.#state, slot);
  }

  /** Starts a worker reading `fd`; `onPacket` gets each packet on this thread. */
  constructor(
    start: Omit<ReaderStart, "state">,
    onPacket: (packet: Uint8Array) => void,
  ) {
    const shared = new SharedArrayBuffer(ReaderState.slots * Int32Array.BYTES_PER_ELEMENT);
    this.#state = new Int32Array(shared);
    this.#eventFd = start.eventFd;
    this.#name = start.name;
    this.#worker = new Worker(new URL("./tun_reader_worker.ts", import.meta.url), {
      type: "module",
    });
    this.done = new Promise<void>((resolve, reject) => {
      this.#worker.onmessage = (event: MessageEvent<ReaderMessage>) => {
        const message = event.data;
        if (message.type === "batch") {
          if (this.#stopping) return;
          try {
            forEachPacket(message.buffer, message.count, onPacket);
          } finally {
            Atomics.sub(this.#state, ReaderState.inFlight, 1);
            Atomics.notify(this.#state, ReaderState.inFlight);
          }
        } else if (message.type === "stopped") {
          resolve();
        } else {
          reject(Object.assign(new Error(message.message), { errno: message.errno }));
        }
      };
      this.#worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`TUN reader worker for ${this.#name} failed: ${event.message}`));
      };
    });
    this.#worker.postMessage({ ...start, state: shared } satisfies ReaderStart);
  }

  /**
   * Tells the worker to stop (shared flag, plus the eventfd to wake its
   * `poll`), waits for it to end, then terminates it. Read errors that ended
   * it earlier are not rethrown here: `done` carries them. No packet is handed
   * on once this is called.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    Atomics.store(this.#state, ReaderState.stop, 1);
    Atomics.notify(this.#state, ReaderState.inFlight);
    const one = new Uint8Array(8);
    new DataView(one.buffer).setBigUint64(0, 1n, true);
    if (libc().write(this.#eventFd, one, 8n) < 0) {
      throw new Error(`stopping the TUN reader for ${this.#name}`, {
        cause: syscallError("write eventfd"),
      });
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), STOP_TIMEOUT_MS);
    });
    const ended = this.done.then(() => "ended" as const, () => "ended" as const);
    const outcome = await Promise.race([ended, timeout]);
    clearTimeout(timer);
    this.#worker.terminate();
    if (outcome === "timeout") {
      throw new Error(
        `the TUN reader for ${this.#name} did not stop within ${STOP_TIMEOUT_MS} ms`,
      );
    }
  }
}
