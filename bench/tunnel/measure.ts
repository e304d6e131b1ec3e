/**
 * iperf3 and ping inside the benchmark's namespaces: a long-running iperf3
 * server, single-stream TCP runs each way (Gbit/s at the receiver) and a ping
 * run (average RTT), at each loss level asked for.
 *
 * @module
 */
import type { LossRules } from "./loss.ts";
import type { PathResult } from "./result.ts";
import type { Child, Host, Topology } from "./support.ts";

/** How long and how hard to measure one path. */
export interface MeasureOptions {
  /** iperf3 run length, seconds. */
  seconds: number;
  /** Pings sent. */
  pings: number;
  /** Seconds between pings. */
  pingInterval: number;
  /** Random loss levels (%) to measure each path at, ascending; ping only at 0. Default [0]. */
  losses?: number[];
}

/** The outcome of an iperf3 or ping run: a figure (maybe with a caveat), or why there is none. */
export type Measured = { ok: true; value: number; note?: string } | { ok: false; error: string };

/** The standard iperf3 port. */
export const IPERF_PORT = 5201;

/**
 * Starts `iperf3 -s` in `host` (bound to `bind` if given) and resolves once it
 * listens. Its output is drained so it can never block on a full pipe; the
 * topology stops it on `destroy()`.
 */
export async function startIperf3Server(
  net: Topology,
  host: Host,
  bind?: string,
  port = IPERF_PORT,
): Promise<Child> {
  const bindArgs = bind ? ["-B", bind] : [];
  // stderr captured: a stopped server says "interrupt - the server has terminated".
  const server = net.spawn(
    host,
    ["iperf3", "-s", "-p", String(port), ...bindArgs, "--forceflush"],
    { stderr: "capture" },
  );
  for (;;) {
    const line = await server.nextLine(10_000);
    if (/Server listening on/.test(line)) break;
  }
  void (async () => {
    try {
      for (;;) await server.nextLine(86_400_000);
    } catch {
      // Stopped: stdout ended.
    }
  })();
  return server;
}

interface Iperf3Json {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number } };
}

/** Which way the iperf3 data flows: from the client (upload) or to it (download, `-R`). */
export type Direction = "up" | "down";

/**
 * One single-stream TCP iperf3 run between `client` and `address:port`, data
 * flowing `direction` (default up: from the client); the value is the
 * receiver's goodput in Gbit/s.
 */
export async function iperf3(
  net: Topology,
  client: Host,
  address: string,
  options: Pick<MeasureOptions, "seconds">,
  port = IPERF_PORT,
  direction: Direction = "up",
): Promise<Measured> {
  const result = await net.exec(client, [
    ...["iperf3", "-c", address, "-p", String(port), "-t", String(options.seconds)],
    ...["-P", "1", "-J", "--connect-timeout", "5000", ...(direction === "down" ? ["-R"] : [])],
  ], { timeoutMs: options.seconds * 1000 + 30_000 });
  let report: Iperf3Json;
  try {
    report = JSON.parse(result.stdout) as Iperf3Json;
  } catch {
    return { ok: false, error: `iperf3 exit ${result.code}: ${result.stderr.trim()}` };
  }
  const bits = report.end?.sum_received?.bits_per_second;
  if (result.code !== 0 || report.error || bits === undefined) {
    return { ok: false, error: report.error ?? `iperf3 exit ${result.code}` };
  }
  return { ok: true, value: bits / 1e9 };
}

/** `ping` from `host` to `address`; the value is the average RTT in ms. */
export async function ping(
  net: Topology,
  host: Host,
  address: string,
  options: Pick<MeasureOptions, "pings" | "pingInterval">,
): Promise<Measured> {
  const result = await net.exec(host, [
    ...["ping", "-n", "-q", "-c", String(options.pings), "-i", String(options.pingInterval)],
    ...["-W", "2", address],
  ], { timeoutMs: options.pings * (options.pingInterval + 2) * 1000 + 10_000 });
  const received = Number(/(\d+) received/.exec(result.stdout)?.[1] ?? 0);
  const avg = /= [\d.]+\/([\d.]+)\//.exec(result.stdout)?.[1];
  if (avg === undefined || received === 0) {
    return {
      ok: false,
      error: `ping exit ${result.code}: ${(result.stdout + result.stderr).trim()}`,
    };
  }
  const lost = options.pings - received;
  const note = lost > 0 ? `ping lost ${lost} of ${options.pings}` : undefined;
  return { ok: true, value: Number(avg), ...(note ? { note } : {}) };
}

/**
 * Measures one path at the loss currently applied (`lossPercent`, for the
 * result): iperf3 from `client` to `address`, iperf3 back (`-R`), then ping
 * when there is no loss. A failed iperf3 run is described by `tcpFailure`
 * (default "iperf3 failed: ...").
 */
export async function measurePath(
  name: string,
  net: Topology,
  client: Host,
  address: string,
  options: MeasureOptions,
  tcpFailure: (error: string) => string = (error) => `iperf3 failed: ${error}`,
  lossPercent = 0,
): Promise<PathResult> {
  const notes: string[] = [];
  const label = lossPercent > 0 ? ` at ${lossPercent} % loss` : "";
  const throughput = async (direction: Direction) => {
    let tcp = await iperf3(net, client, address, options, IPERF_PORT, direction);
    // Under heavy loss the server may still be closing the previous test.
    for (let retry = 0; retry < 3 && !tcp.ok && /busy/.test(tcp.error); retry++) {
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      tcp = await iperf3(net, client, address, options, IPERF_PORT, direction);
    }
    if (!tcp.ok) notes.push(`${direction}${label}: ${tcpFailure(tcp.error)}`);
    return tcp.ok ? tcp.value : null;
  };
  const gbps = await throughput("up");
  const downGbps = await throughput("down");
  let pingMs: number | null = null;
  if (lossPercent === 0) {
    const rtt = await ping(net, client, address, options);
    if (!rtt.ok) notes.push(rtt.error);
    else if (rtt.note) notes.push(rtt.note);
    pingMs = rtt.ok ? rtt.value : null;
  }
  return { name, lossPercent, gbps, downGbps, pingMs, notes };
}

/**
 * Measures one path at every loss level of `options.losses` (default 0 only),
 * setting `loss` before each and clearing it after; one result per level.
 */
export async function measureUnderLoss(
  name: string,
  net: Topology,
  client: Host,
  address: string,
  options: MeasureOptions,
  loss: LossRules,
  tcpFailure?: (error: string) => string,
): Promise<PathResult[]> {
  const results: PathResult[] = [];
  try {
    for (const level of options.losses ?? [0]) {
      await loss.set(level);
      results.push(await measurePath(name, net, client, address, options, tcpFailure, level));
    }
  } finally {
    await loss.set(0);
  }
  return results;
}
