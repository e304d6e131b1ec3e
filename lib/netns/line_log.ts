/**
 * A child's output stream read continuously as lines, so the child never
 * blocks on a full pipe: the last lines are kept for error messages, and a
 * caller can wait for a line that matches (e.g. a "listening on" log line).
 */

/** Lines kept by default. */
const DEFAULT_KEEP = 40;

interface Waiter {
  pattern: RegExp;
  resolve(line: string): void;
  reject(error: Error): void;
}

/** The lines of one stream, drained as they come. */
export class LineLog {
  /** Resolves once the stream has ended and every line has been seen. */
  readonly ended: Promise<void>;
  readonly #label: string;
  readonly #keep: number;
  readonly #recent: string[] = [];
  readonly #waiters = new Set<Waiter>();
  #done = false;

  /** Starts draining `stream`; `label` names it in errors (e.g. "relay stderr"). */
  constructor(stream: ReadableStream<Uint8Array>, label: string, keep = DEFAULT_KEEP) {
    this.#label = label;
    this.#keep = keep;
    this.ended = this.#drain(stream);
  }

  /** The last lines seen, oldest first. */
  tail(): string[] {
    return [...this.#recent];
  }

  /**
   * The first line matching `pattern` among the kept recent lines or the ones
   * still to come; rejects after `timeoutMs` or when the stream ends first.
   */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.#recent.find((line) => pattern.test(line));
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.#done) return Promise.reject(this.#endedError(pattern));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`${this.#label}: no line matching ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    let buffered = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buffered += chunk;
        let at: number;
        while ((at = buffered.indexOf("\n")) >= 0) {
          this.#add(buffered.slice(0, at));
          buffered = buffered.slice(at + 1);
        }
      }
    } catch {
      // The pipe broke: treat it as the end of the stream.
    }
    if (buffered !== "") this.#add(buffered);
    this.#done = true;
    for (const waiter of this.#waiters) waiter.reject(this.#endedError(waiter.pattern));
    this.#waiters.clear();
  }

  #add(line: string): void {
    this.#recent.push(line);
    if (this.#recent.length > this.#keep) this.#recent.shift();
    for (const waiter of this.#waiters) {
      if (!waiter.pattern.test(line)) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(line);
    }
  }

  #endedError(pattern: RegExp): Error {
    return new Error(`${this.#label} ended without a line matching ${pattern}`);
  }
}
