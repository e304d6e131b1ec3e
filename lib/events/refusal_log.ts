/**
 * Refusals logged without letting a peer flood the log: each refusal goes to
 * the debug level, and a summary of the counts by reason goes to the info
 * level at most once per interval (a peer that sends 50,000 refused requests
 * costs one line a minute, not 50,000).
 */
import { getLogger } from "@logtape/logtape";

/** How often the summary of refusals is logged. */
export const REFUSAL_SUMMARY_MS = 60_000;

/** Counts refusals by reason and summarises them periodically. */
export class RefusalLog {
  /** Refusals since the start, by reason. */
  readonly totals: Record<string, number> = {};
  #pending: Record<string, number> = {};
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #log: ReturnType<typeof getLogger>;
  readonly #intervalMs: number;

  /** Logs under `category` (e.g. `["ztna", "relay"]`), summarising every `intervalMs`. */
  constructor(category: string[], intervalMs = REFUSAL_SUMMARY_MS) {
    this.#log = getLogger(category);
    this.#intervalMs = intervalMs;
  }

  /** Records a refusal of `who` for `reason` (a code, e.g. `unknown-service`), with its detail. */
  note(reason: string, who: string, detail: string): void {
    this.#log.debug("{who}: {reason}: {detail}", { who, reason, detail });
    this.totals[reason] = (this.totals[reason] ?? 0) + 1;
    this.#pending[reason] = (this.#pending[reason] ?? 0) + 1;
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => this.#summarise(), this.#intervalMs);
    Deno.unrefTimer(this.#timer);
  }

  #summarise(): void {
    this.#timer = undefined;
    const counts = Object.entries(this.#pending).map(([reason, n]) => `${reason} ${n}`);
    this.#pending = {};
    if (counts.length > 0) {
      this.#log.info("refused in the last {seconds} s: {counts}", {
        seconds: this.#intervalMs / 1000,
        counts: counts.join(", "),
      });
    }
  }

  /** Logs what is pending now and stops the timer. */
  close(): void {
    clearTimeout(this.#timer);
    this.#summarise();
  }
}
