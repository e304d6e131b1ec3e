/**
 * Ctrl-C during the demo: the first SIGINT or SIGTERM aborts it (which starts
 * the cleanup); later ones are ignored so the namespaces are never left behind
 * by an impatient second Ctrl-C.
 */
import { getLogger } from "@logtape/logtape";

const log = getLogger(["ztna", "demo"]);

const SIGNALS = ["SIGINT", "SIGTERM"] as const;
const SIGNAL_NUMBERS: Record<typeof SIGNALS[number], number> = { SIGINT: 2, SIGTERM: 15 };

/** The demo was stopped by a signal; it has cleaned up when this reaches the caller. */
export class DemoInterrupted extends Error {
  /** The conventional exit status: 128 + the signal's number (130 for SIGINT). */
  readonly exitCode: number;

  constructor(readonly signal: typeof SIGNALS[number]) {
    super(`interrupted by ${signal}`);
    this.name = "DemoInterrupted";
    this.exitCode = 128 + SIGNAL_NUMBERS[signal];
  }
}

/** An abort signal fired by the first SIGINT or SIGTERM; `dispose()` removes the listeners. */
export function abortOnSignals(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const handlers = SIGNALS.map((name) => {
    const handler = () => {
      if (controller.signal.aborted) {
        log.warn(`${name}: still cleaning up, please wait`);
        return;
      }
      log.info(`${name}: stopping and cleaning up`);
      controller.abort(new DemoInterrupted(name));
    };
    Deno.addSignalListener(name, handler);
    return () => Deno.removeSignalListener(name, handler);
  });
  return {
    signal: controller.signal,
    dispose: () => handlers.forEach((remove) => remove()),
  };
}

/** Throws the signal's DemoInterrupted if it has fired. */
export function throwIfInterrupted(signal: AbortSignal): void {
  if (signal.aborted) throw interruption(signal);
}

/** The DemoInterrupted a fired signal carries. */
export function interruption(signal: AbortSignal): DemoInterrupted {
  return signal.reason instanceof DemoInterrupted ? signal.reason : new DemoInterrupted("SIGINT");
}

/** Resolves after `ms`, or rejects with the interruption once `signal` fires. */
export function interruptibleSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(interruption(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(interruption(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
