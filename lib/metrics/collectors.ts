/**
 * Prometheus collectors that read a daemon's existing counters when scraped
 * (prom-client `collect()` callbacks): nothing is counted twice in the data
 * path. Each collector reads a list of samples, labels and value, from a
 * function; a series missing from a scrape is not exported in it.
 */
import { Counter, Gauge, type Registry } from "prom-client";

/** One exported series: its label values and its value. */
export interface Sample<L extends string> {
  labels: Partial<Record<L, string>>;
  value: number;
}

/** What a collector is made of. */
export interface CollectorSpec<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** The samples now; called at every scrape. */
  read: () => Sample<L>[];
}

/** A gauge whose samples `spec.read` gives at every scrape. */
export function readGauge<L extends string>(registry: Registry, spec: CollectorSpec<L>): void {
  const { read } = spec;
  new Gauge<L>({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset();
      for (const sample of read()) this.set(sample.labels, sample.value);
    },
  });
}

/**
 * A counter whose totals `spec.read` gives at every scrape (totals the daemon
 * keeps since its start; a total that goes down is seen as a counter reset).
 */
export function readCounter<L extends string>(registry: Registry, spec: CollectorSpec<L>): void {
  const { read } = spec;
  new Counter<L>({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset();
      for (const sample of read()) this.inc(sample.labels, Math.max(0, sample.value));
    },
  });
}

/** One unlabelled sample. */
export function single(value: number): Sample<never>[] {
  return [{ labels: {}, value }];
}

/** One sample per entry of `counts`, the key as the value of label `label`. */
export function byLabel<L extends string>(label: L, counts: Record<string, number>): Sample<L>[] {
  return Object.entries(counts).map(([key, value]) => ({
    labels: { [label]: key } as Partial<Record<L, string>>,
    value,
  }));
}
