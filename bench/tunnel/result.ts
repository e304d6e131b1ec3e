/**
 * One measured path of the tunnel benchmark and the tables that compare them.
 *
 * @module
 */

/** What one path measured at one loss level; `null` with a `note` when a figure was not possible. */
export interface PathResult {
  /** Label in the table, e.g. `"raw veth"`. */
  name: string;
  /** Random loss applied each way during the runs, %. */
  lossPercent: number;
  /** iperf3 TCP goodput from the agent side (upload), as the receiver saw it, Gbit/s. */
  gbps: number | null;
  /** iperf3 TCP goodput to the agent side (download, `-R`), Gbit/s. */
  downGbps: number | null;
  /** iperf3 TCP goodput of four streams from the agent side, Gbit/s (without loss only). */
  fourStreamGbps: number | null;
  /** Small UDP datagrams that reached the service side, thousands per second (without loss only). */
  udpKpps: number | null;
  /** Average ping round trip on an idle path, ms (without loss only). */
  pingMs: number | null;
  /** Average ping round trip during a single-stream upload, ms (without loss only). */
  loadedPingMs: number | null;
  /** CPU seconds per GB of the single-stream upload, by process label; null for none measured. */
  cpuPerGb: Record<string, number> | null;
  /** Why a figure is missing (e.g. "TCP not available: ..."). */
  notes: string[];
}

/** A path that could not be measured, with the reason as its note. */
export function notMeasured(name: string, error: unknown, lossPercent = 0): PathResult {
  const message = error instanceof Error ? error.message : String(error);
  return {
    name,
    lossPercent,
    gbps: null,
    downGbps: null,
    fourStreamGbps: null,
    udpKpps: null,
    pingMs: null,
    loadedPingMs: null,
    cpuPerGb: null,
    notes: [`not measured: ${message}`],
  };
}

/** Baseline path names the ratios are taken against. */
export interface Baselines {
  wireguard: string;
  wireguardLatest: string;
  veth: string;
}

function cell(value: number | null, digits: number): string {
  return value === null ? "-" : value.toFixed(digits);
}

function ratio(value: number | null, base: number | null | undefined): string {
  return value === null || !base ? "-" : `${(value / base).toFixed(2)}x`;
}

/** Rows as aligned text: the first column left-aligned, the others right-aligned, a rule under the header. */
function align(rows: string[][]): string[] {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const lines = rows.map((row) =>
    row.map((text, column) => column === 0 ? text.padEnd(widths[0]) : text.padStart(widths[column]))
      .join("  ")
  );
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return lines;
}

/**
 * The comparison tables. Without loss: path, upload and download Gbit/s, four
 * streams up, UDP kpps, idle and loaded ping ms, and the upload ratios (one
 * stream and four) against the paths named in `baselines`, then CPU seconds
 * per GB by process. Then,
 * if any run had loss, every level: upload and download, each as a ratio to
 * Debian's wireguard-go at the same level in the same run. Notes follow, one
 * line each.
 */
export function formatTable(results: PathResult[], baselines: Baselines): string {
  const find = (name: string, loss: number) =>
    results.find((r) => r.name === name && r.lossPercent === loss);
  const lossless = results.filter((r) => r.lossPercent === 0);
  const lines: string[] = [];
  if (lossless.length > 0) {
    const wireguard = find(baselines.wireguard, 0)?.gbps;
    const latest = find(baselines.wireguardLatest, 0)?.gbps;
    const veth = find(baselines.veth, 0)?.gbps;
    const fourWireguard = find(baselines.wireguard, 0)?.fourStreamGbps;
    const fourLatest = find(baselines.wireguardLatest, 0)?.fourStreamGbps;
    lines.push(...align([
      [
        "path",
        "up Gbit/s",
        "down Gbit/s",
        "4 streams",
        "UDP kpps",
        "ping ms",
        "loaded ping",
        "up vs wg Debian",
        "up vs wg newest",
        "up vs veth",
        "4 vs wg Debian",
        "4 vs wg newest",
      ],
      ...lossless.map((r) => [
        r.name,
        cell(r.gbps, 3),
        cell(r.downGbps, 3),
        cell(r.fourStreamGbps, 3),
        cell(r.udpKpps, 0),
        cell(r.pingMs, 3),
        cell(r.loadedPingMs, 2),
        ratio(r.gbps, wireguard),
        ratio(r.gbps, latest),
        ratio(r.gbps, veth),
        ratio(r.fourStreamGbps, fourWireguard),
        ratio(r.fourStreamGbps, fourLatest),
      ]),
    ]));
    lines.push("", "CPU s/GB of the single-stream upload, by process:");
    for (const r of lossless) {
      const parts = Object.entries(r.cpuPerGb ?? {}).map(([label, s]) =>
        `${label} ${s.toFixed(2)}`
      );
      const why = r.name === baselines.veth ? " (kernel only: no tunnel process)" : " (see notes)";
      lines.push(`  ${r.name}: ${parts.length > 0 ? parts.join(", ") : `-${why}`}`);
    }
  }
  if (results.some((r) => r.lossPercent > 0)) {
    const sorted = [...results].sort((a, b) => a.lossPercent - b.lossPercent);
    if (lines.length > 0) lines.push("");
    lines.push("under random loss each way (ratios: Debian's wireguard-go at the same loss):");
    lines.push(...align([
      ["path", "loss %", "up Gbit/s", "down Gbit/s", "up vs wg-go Debian", "down vs wg-go Debian"],
      ...sorted.map((r) => {
        const base = find(baselines.wireguard, r.lossPercent);
        return [
          r.name,
          String(r.lossPercent),
          cell(r.gbps, 3),
          cell(r.downGbps, 3),
          ratio(r.gbps, base?.gbps),
          ratio(r.downGbps, base?.downGbps),
        ];
      }),
    ]));
  }
  for (const r of results) {
    for (const note of r.notes) lines.push(`${r.name}: ${note}`);
  }
  return lines.join("\n");
}
