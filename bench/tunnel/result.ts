/**
 * One measured path of the tunnel benchmark and the table that compares them.
 *
 * @module
 */

/** What one path measured; `null` with a `note` when a measurement was not possible. */
export interface PathResult {
  /** Label in the table, e.g. `"raw veth"`. */
  name: string;
  /** iperf3 TCP goodput as the receiver saw it, Gbit/s (10^9 bit/s). */
  gbps: number | null;
  /** Average ping round trip, ms. */
  pingMs: number | null;
  /** Why a figure is missing (e.g. "TCP not available: ..."). */
  notes: string[];
}

/** A path that could not be measured, with the reason as its note. */
export function notMeasured(name: string, error: unknown): PathResult {
  const message = error instanceof Error ? error.message : String(error);
  return { name, gbps: null, pingMs: null, notes: [`not measured: ${message}`] };
}

function cell(value: number | null, digits: number): string {
  return value === null ? "-" : value.toFixed(digits);
}

function ratio(value: number | null, base: number | null | undefined): string {
  return value === null || !base ? "-" : `${(value / base).toFixed(2)}x`;
}

/**
 * The comparison table: path, Gbit/s, ping avg ms, and the throughput ratio
 * against the paths named `wireguard`, `wireguardLatest` and `veth` (found
 * among `results`). Notes follow the table, one line each.
 */
export function formatTable(
  results: PathResult[],
  baselines: { wireguard: string; wireguardLatest: string; veth: string },
): string {
  const gbpsOf = (name: string) => results.find((r) => r.name === name)?.gbps;
  const wireguard = gbpsOf(baselines.wireguard);
  const latest = gbpsOf(baselines.wireguardLatest);
  const veth = gbpsOf(baselines.veth);
  const rows = [
    ["path", "Gbit/s", "ping avg ms", "vs wg-go Debian", "vs wg-go newest", "vs veth"],
    ...results.map((r) => [
      r.name,
      cell(r.gbps, 3),
      cell(r.pingMs, 3),
      ratio(r.gbps, wireguard),
      ratio(r.gbps, latest),
      ratio(r.gbps, veth),
    ]),
  ];
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const lines = rows.map((row) =>
    row.map((text, column) => column === 0 ? text.padEnd(widths[0]) : text.padStart(widths[column]))
      .join("  ")
  );
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of results) {
    for (const note of r.notes) lines.push(`${r.name}: ${note}`);
  }
  return lines.join("\n");
}
