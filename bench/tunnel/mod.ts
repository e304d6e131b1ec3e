/**
 * The tunnel suite of `deno task bench`: TCP throughput (iperf3, one stream)
 * and ping RTT from an agent host to a service host over paths built in
 * network namespaces in this run — a raw veth pair (the ceiling), Debian's
 * wireguard-go and the newest wireguard-go between the same namespaces, and
 * ztna across two NATs, over the relay and direct — printed as one table with
 * ratios against the baselines, with the time from the agent's start to its
 * relay session and to the direct path. Needs root; otherwise it prints why
 * and returns.
 *
 * @module
 */
import { benchDirect, VETH, WIREGUARD, WIREGUARD_LATEST } from "./direct.ts";
import { catchInterrupts, exitIfInterrupted } from "./interrupt.ts";
import type { MeasureOptions } from "./measure.ts";
import { formatTable, notMeasured, type PathResult } from "./result.ts";
import { benchZtna, type StartTimes, ZTNA } from "./ztna.ts";

/** Options of the tunnel suite. */
export interface TunnelSuiteOptions extends MeasureOptions {
  /** Profile ztna's connector and agent (`--cpu-prof`) into this folder. */
  cpuProfileDir?: string;
}

/** What ztna should reach against Debian's wireguard-go, as throughput ratios. */
const TARGETS = { relay: 0.5, direct: 1.0 } as const;
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
    `\nTunnel throughput and latency: iperf3 TCP, 1 stream, ${options.seconds} s; ` +
      `${options.pings} pings at ${options.pingInterval} s; agent -> service, namespaces`,
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
  const results: PathResult[] = [];
  const starts: StartTimes[] = [];
  const stopCatching = catchInterrupts();
  try {
    try {
      results.push(...await benchDirect(options));
    } catch (error) {
      for (const name of [VETH, WIREGUARD, WIREGUARD_LATEST]) {
        results.push(notMeasured(name, error));
      }
    }
    exitIfInterrupted();
    for (const mode of ["relay", "direct"] as const) {
      try {
        const { result, start } = await benchZtna(options, mode);
        results.push(result);
        if (mode === "direct") starts.push(start);
      } catch (error) {
        results.push(notMeasured(ZTNA[mode], error));
      }
      exitIfInterrupted();
    }
  } finally {
    stopCatching();
  }
  console.log(
    formatTable(results, { wireguard: WIREGUARD, wireguardLatest: WIREGUARD_LATEST, veth: VETH }),
  );
  const wireguard = results.find((r) => r.name === WIREGUARD)?.gbps;
  for (const mode of ["relay", "direct"] as const) {
    const ztna = results.find((r) => r.name === ZTNA[mode])?.gbps;
    if (!ztna || !wireguard) continue;
    const ratio = ztna / wireguard;
    console.log(
      `target ${ZTNA[mode]} >= ${TARGETS[mode]}x Debian's wireguard-go: ${ratio.toFixed(2)}x, ` +
        (ratio >= TARGETS[mode] ? "met" : "NOT met"),
    );
  }
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

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
