/**
 * prom-client's default process metrics, those that work under Deno: CPU time,
 * memory, file descriptors, start time, V8 heap. Its event-loop lag metrics
 * are dropped (Deno's `monitorEventLoopDelay` records nothing: NaN and a
 * minimum of 9.2e9 s), and so are its `nodejs_active_*_total` gauges (a
 * `_total` suffix on a gauge breaks Prometheus naming rules).
 */
import { collectDefaultMetrics, Registry } from "prom-client";

/** Whether a default metric is kept. */
function works(name: string): boolean {
  return name.startsWith("process_") || name.startsWith("nodejs_heap_") ||
    name === "nodejs_external_memory_bytes";
}

/** Registers the working default metrics in `registry`; none if prom-client cannot make them. */
export function registerProcessMetrics(registry: Registry): void {
  const scratch = new Registry();
  try {
    collectDefaultMetrics({ register: scratch });
  } catch {
    return;
  }
  for (const { name } of scratch.getMetricsAsArray()) {
    const metric = scratch.getSingleMetric(name);
    if (metric && works(name)) registry.registerMetric(metric);
  }
}
