/**
 * Namespace cleanup on Ctrl-C or SIGTERM. `finally` blocks do not run when a
 * signal ends the process, so while the suite runs, the first SIGINT or
 * SIGTERM marks it interrupted and destroys every registered topology
 * (processes, links, namespaces): whatever the suite was waiting for then
 * fails fast, its `finally` blocks clean up, and the suite exits with 130
 * (see `exitIfInterrupted`). A second signal exits at once.
 *
 * @module
 */
import type { Topology } from "./support.ts";

const SIGNALS = ["SIGINT", "SIGTERM"] as const;
const live = new Set<Topology>();
let interrupted = false;

function onSignal(): void {
  if (interrupted) Deno.exit(130);
  interrupted = true;
  console.error("\ninterrupted: tearing down the benchmark's namespaces (again to force)");
  for (const net of live) net.destroy().catch(() => {});
}

/** Catches SIGINT and SIGTERM until the returned function is called. */
export function catchInterrupts(): () => void {
  for (const signal of SIGNALS) Deno.addSignalListener(signal, onSignal);
  return () => {
    for (const signal of SIGNALS) Deno.removeSignalListener(signal, onSignal);
  };
}

/**
 * Registers `net` for destruction on interrupt until the returned function is
 * called (in `finally`, after `destroy()`). Registering after an interrupt
 * destroys `net` at once, so a topology built meanwhile is not left behind.
 */
export function destroyOnInterrupt(net: Topology): () => void {
  live.add(net);
  if (interrupted) net.destroy().catch(() => {});
  return () => live.delete(net);
}

/** Throws if the suite was interrupted (checked between steps). */
export function throwIfInterrupted(): void {
  if (interrupted) throw new Error("interrupted");
}

/** After cleanup: exits with 130 if the suite was interrupted. */
export function exitIfInterrupted(): void {
  if (interrupted) Deno.exit(130);
}
