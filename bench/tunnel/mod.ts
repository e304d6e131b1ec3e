/**
 * The tunnel suite of `deno task bench`: TCP throughput (iperf3, one stream)
 * and ping RTT from an agent host to a service host over three paths built in
 * network namespaces in this run — a raw veth pair (the ceiling), wireguard-go
 * between the same namespaces, and ztna through the relay across two NATs —
 * printed as one table with ratios against wireguard-go and the veth. Needs
 * root; otherwise it prints why and returns.
 *
 * @module
 */
import { benchDirect, VETH, WIREGUARD } from "./direct.ts";
import { catchInterrupts, exitIfInterrupted } from "./interrupt.ts";
import type { MeasureOptions } from "./measure.ts";
import { formatTable, notMeasured, type PathResult } from "./result.ts";
import { benchZtna, ZTNA } from "./ztna.ts";

/** Options of the tunnel suite. */
export interface TunnelSuiteOptions extends MeasureOptions {
  /** Profile ztna's connector and agent (`--cpu-prof`) into this folder. */
  cpuProfileDir?: string;
}

/** What ztna should reach against wireguard-go, as a throughput ratio. */
const TARGET_VS_WIREGUARD = 0.5;

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
  const stopCatching = catchInterrupts();
  try {
    try {
      results.push(...await benchDirect(options));
    } catch (error) {
      for (const name of [VETH, WIREGUARD]) results.push(notMeasured(name, error));
    }
    exitIfInterrupted();
    try {
      results.push(await benchZtna(options));
    } catch (error) {
      results.push(notMeasured(ZTNA, error));
    }
    exitIfInterrupted();
  } finally {
    stopCatching();
  }
  console.log(formatTable(results, { wireguard: WIREGUARD, veth: VETH }));
  const ztna = results.find((r) => r.name === ZTNA)?.gbps;
  const wireguard = results.find((r) => r.name === WIREGUARD)?.gbps;
  if (ztna && wireguard) {
    const ratio = ztna / wireguard;
    console.log(
      `target ztna >= ${TARGET_VS_WIREGUARD}x wireguard-go: ${ratio.toFixed(3)}x, ` +
        (ratio >= TARGET_VS_WIREGUARD ? "met" : "NOT met"),
    );
  }
  if (options.cpuProfileDir) console.log(`CPU profiles in ${options.cpuProfileDir}`);
}
