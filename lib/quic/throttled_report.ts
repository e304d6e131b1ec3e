/**
 * A report of repeated events that a peer cannot turn into a log flood: the
 * first event is reported at once, later ones are counted and reported with
 * the next event at least one interval after the last report (or on `flush`).
 * No timer: quiet periods cost nothing.
 */

/** Counts events and reports them at most once per interval. */
export class ThrottledReport<D> {
  readonly #intervalMs: number;
  readonly #report: (count: number, latest: D) => void;
  readonly #now: () => number;
  #pending = 0;
  #latest: D | undefined;
  #reportedAt = -Infinity;

  /**
   * `report(count, latest)` gets the number of events since the last report and
   * the detail of the latest one; `now` is the clock in ms (injectable for tests).
   */
  constructor(
    intervalMs: number,
    report: (count: number, latest: D) => void,
    now: () => number = () => performance.now(),
  ) {
    this.#intervalMs = intervalMs;
    this.#report = report;
    this.#now = now;
  }

  /** Records one event with its detail; reports if an interval has passed since the last report. */
  note(detail: D): void {
    this.#pending++;
    this.#latest = detail;
    const now = this.#now();
    if (now - this.#reportedAt < this.#intervalMs) return;
    this.#reportedAt = now;
    this.flush();
  }

  /** Reports the events not yet reported, if any (when the reporter stops). */
  flush(): void {
    if (this.#pending === 0) return;
    const count = this.#pending;
    this.#pending = 0;
    this.#report(count, this.#latest!);
  }
}
