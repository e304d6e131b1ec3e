/**
 * The tunnel suite of `deno task bench`: TCP throughput (iperf3, one stream
 * each way and four up), UDP packet rate, idle and loaded ping RTT, and CPU
 * seconds per GB of each process, from an agent host to a service host over
 * paths built in network namespaces in this run — a raw veth pair (the
 * ceiling), Debian's wireguard-go and the newest wireguard-go between the same
 * namespaces, and ztna across two NATs, over the relay, direct, and direct with
 * the connector's kernel-forwarding mode — printed as one table with
 * ratios against the baselines, with the time from the agent's start to its
 * relay session and to the direct path. Each path is measured both ways and
 * at every random-loss level of `losses` (bench/tunnel/loss.ts), with the
 * lossy runs in a second table as ratios to Debian's wireguard-go at the
 * same level. Needs root; otherwise it prints why and returns.
 *
 * @module
 */
import { benchDirect, VETH, WIREGUARD, WIREGUARD_LATEST } from "./direct.ts";
import { catchInterrupts, exitIfInterrupted } from "./interrupt.ts";
import { type MeasureOptions, UDP_DATAGRAM_BYTES } from "./measure.ts";
import { formatTable, notMeasured, type PathResult } from "./result.ts";
import { benchZtna, type StartTimes, ZTNA } from "./ztna.ts";

/** Options of the tunnel suite. */
export interface TunnelSuiteOptions extends MeasureOptions {
  /** Profile ztna's connector and agent (`--cpu-prof`) into this folder. */
  cpuProfileDir?: string;
}

/**
 * Issue 10's throughput targets without loss, as single-stream upload ratios
 * in the same run: [path, baseline, ratio].
 */
const TARGETS: [string, string, number][] = [
  [ZTNA.kernel, WIREGUARD_LATEST, 1.0],
  [ZTNA.direct, WIREGUARD, 1.0],
  [ZTNA.relay, ZTNA.direct, 0.7],
];
/** What ztna should reach under random loss, each way, against Debian's wireguard-go at the same loss. */
const TARGET_UNDER_LOSS = 0.8;
/** At most this long from the agent's start to the direct path (ms). */
const TARGET_DIRECT_MS = 1_000;

const TOOLS = ["ip", "iptables", "iperf3", "ping", "wg", "wireguard-go"];

async function missingTools(): Promise<string[]> {
  const found = await Promise.all(TOOLS.map(async (tool) => {
    const which = await new Deno.Command("sh", {
      args: ["-c", `command -v ${tool}`],
      stdout: "null",
      stderr: "null",
    }).output();
    return which.success;
  }));
  return TOOLS.filter((_, i) => !found[i]);
}

/**
 * Runs the suite and prints its table; skips with one line when not root or
 * a tool is missing. A path that fails to build is reported in the table.
 */
export async function runTunnelSuite(options: TunnelSuiteOptions): Promise<void> {
  console.log(
    `\nTunnel throughput and latency: iperf3 TCP, 1 stream, ${options.seconds} s each way ` +
      `(up: agent -> service, down: -R), 4 streams up, UDP ${UDP_DATAGRAM_BYTES}-byte datagrams ` +
      `at full speed; ${options.pings} pings at ${options.pingInterval} s, idle and during an ` +
      `upload; CPU s/GB of each process over the upload; ` +
      `random loss each way: ${(options.losses ?? [0]).join(", ")} %; namespaces`,
  );
  if (Deno.uid() !== 0) {
    console.log("  skipped: the tunnel suite needs root (network namespaces, veth, TUN)");
    return;
  }
  const missing = await missingTools();
  if (missing.length > 0) {
    console.log(`  skipped: missing ${missing.join(", ")}`);
    return;
  }
  const losses = options.losses ?? [0];
  const results: PathResult[] = [];
  const starts: StartTimes[] = [];
  const stopCatching = catchInterrupts();
  try {
    try {
      results.push(...await benchDirect(options));
    } catch (error) {
      for (const name of [VETH, WIREGUARD, WIREGUARD_LATEST]) {
        for (const level of losses) results.push(notMeasured(name, error, level));
      }
    }
    exitIfInterrupted();
    for (const mode of ["relay", "direct", "kernel"] as const) {
      try {
        const measured = await benchZtna(options, mode);
        results.push(...measured.results);
        if (mode === "direct") starts.push(measured.start);
      } catch (error) {
        for (const level of losses) results.push(notMeasured(ZTNA[mode], error, level));
      }
      exitIfInterrupted();
    }
  } finally {
    stopCatching();
  }
  console.log(
    formatTable(results, { wireguard: WIREGUARD, wireguardLatest: WIREGUARD_LATEST, veth: VETH }),
  );
  const lossless = (name: string) =>
    results.find((r) => r.name === name && r.lossPercent === 0)?.gbps;
  for (const [path, baseline, target] of TARGETS) {
    const measured = lossless(path), base = lossless(baseline);
    const ratio = measured && base ? measured / base : null;
    console.log(
      `target ${path} >= ${target}x ${baseline} (up): ` +
        (ratio === null
          ? "not measured (see notes)"
          : `${ratio.toFixed(2)}x, ${ratio >= target ? "met" : "NOT met"}`),
    );
  }
  for (const line of lossTargets(results)) console.log(line);
  for (const start of starts) {
    const direct = start.directMs === null ? "never went direct" : `${fmtSeconds(start.directMs)}`;
    console.log(
      `agent start → first packet over the relay ${fmtSeconds(start.relayMs)}, → direct ${direct}` +
        `; target direct <= ${fmtSeconds(TARGET_DIRECT_MS)}: ` +
        (start.directMs !== null && start.directMs <= TARGET_DIRECT_MS ? "met" : "NOT met"),
    );
  }
  if (options.cpuProfileDir) console.log(`CPU profiles in ${options.cpuProfileDir}`);
}

/**
 * Issue 10's loss target for each ztna path and lossy level: at least
 * TARGET_UNDER_LOSS × Debian's wireguard-go at the same level, each way.
 */
function lossTargets(results: PathResult[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    if (r.lossPercent === 0 || !Object.values(ZTNA).includes(r.name as typeof ZTNA.relay)) continue;
    const base = results.find((b) => b.name === WIREGUARD && b.lossPercent === r.lossPercent);
    const ratios = [[r.gbps, base?.gbps], [r.downGbps, base?.downGbps]].map(([a, b]) =>
      a === null || a === undefined || !b ? null : a / b
    );
    if (ratios.some((x) => x === null)) continue;
    const [up, down] = ratios as number[];
    const met = up >= TARGET_UNDER_LOSS && down >= TARGET_UNDER_LOSS;
    lines.push(
      `target ${r.name} at ${r.lossPercent} % loss >= ${TARGET_UNDER_LOSS}x Debian's wireguard-go ` +
        `each way: up ${up.toFixed(2)}x, down ${down.toFixed(2)}x, ${met ? "met" : "NOT met"}`,
    );
  }
  return lines;
}

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
