/**
 * iperf3 and ping inside the benchmark's namespaces: a long-running iperf3
 * server, single-stream TCP runs each way (Gbit/s at the receiver), four
 * streams up, a UDP packet rate with small datagrams, an idle ping and a
 * ping during an upload (average RTT), and the CPU seconds the path's
 * processes spent per gigabyte of the single-stream upload, at each loss
 * level asked for (only the single-stream runs under loss).
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
  end?: {
    sum_received?: { bits_per_second?: number };
    sum?: { packets?: number; lost_packets?: number; seconds?: number };
  };
}

/** Bytes of each datagram of the UDP packet-rate run (iperf3 `-l`). */
export const UDP_DATAGRAM_BYTES = 64;

/** A process of a path whose CPU time is measured, by its label in the table. */
export interface MeasuredProcess {
  label: string;
  pid: number;
}

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`; 100 on Linux). */
const CLOCK_TICKS = 100;

/** User plus system CPU seconds of process `pid` so far (all its threads), from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Which way the iperf3 data flows: from the client (upload) or to it (download, `-R`). */
export type Direction = "up" | "down";

/** Runs iperf3 with `args` after the common ones; its JSON report, or why there is none. */
async function iperf3Report(
  net: Topology,
  client: Host,
  address: string,
  seconds: number,
  port: number,
  args: string[],
): Promise<{ ok: true; report: Iperf3Json } | { ok: false; error: string }> {
  const result = await net.exec(client, [
    ...["iperf3", "-c", address, "-p", String(port), "-t", String(seconds)],
    ...["-J", "--connect-timeout", "5000", ...args],
  ], { timeoutMs: seconds * 1000 + 30_000 });
  let report: Iperf3Json;
  try {
    report = JSON.parse(result.stdout) as Iperf3Json;
  } catch {
    return { ok: false, error: `iperf3 exit ${result.code}: ${result.stderr.trim()}` };
  }
  if (result.code !== 0 || report.error) {
    return { ok: false, error: report.error ?? `iperf3 exit ${result.code}` };
  }
  return { ok: true, report };
}

/**
 * One TCP iperf3 run of `streams` streams (default 1) between `client` and
 * `address:port`, data flowing `direction` (default up: from the client); the
 * value is the receiver's goodput in Gbit/s.
 */
export async function iperf3(
  net: Topology,
  client: Host,
  address: string,
  options: Pick<MeasureOptions, "seconds">,
  port = IPERF_PORT,
  direction: Direction = "up",
  streams = 1,
): Promise<Measured> {
  const run = await iperf3Report(net, client, address, options.seconds, port, [
    ...["-P", String(streams), ...(direction === "down" ? ["-R"] : [])],
  ]);
  if (!run.ok) return run;
  const bits = run.report.end?.sum_received?.bits_per_second;
  if (bits === undefined) return { ok: false, error: "iperf3 reported no received rate" };
  return { ok: true, value: bits / 1e9 };
}

/**
 * UDP packet rate: iperf3 `-u` with UDP_DATAGRAM_BYTES-byte datagrams sent as
 * fast as the client can (`-b 0`); the value is thousands of packets per
 * second that reached the server (sent less lost, over the run).
 */
export async function udpRate(
  net: Topology,
  client: Host,
  address: string,
  options: Pick<MeasureOptions, "seconds">,
  port = IPERF_PORT,
): Promise<Measured> {
  const run = await iperf3Report(net, client, address, options.seconds, port, [
    ...["-u", "-b", "0", "-l", String(UDP_DATAGRAM_BYTES)],
  ]);
  if (!run.ok) return run;
  const sum = run.report.end?.sum;
  if (sum?.packets === undefined || sum.lost_packets === undefined || !sum.seconds) {
    return { ok: false, error: "iperf3 reported no UDP packet counts" };
  }
  const lostShare = sum.packets > 0 ? sum.lost_packets / sum.packets : 0;
  const note = lostShare > 0.05
    ? `${(lostShare * 100).toFixed(0)} % of the datagrams sent were lost`
    : undefined;
  const value = (sum.packets - sum.lost_packets) / sum.seconds / 1000;
  return { ok: true, value, ...(note ? { note } : {}) };
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
 * Pings from `host` to `address` over the middle of an upload of `seconds`
 * that starts now (from 1 s in, every 0.1 s): the value is the average RTT in
 * ms under load.
 */
async function pingDuringUpload(
  net: Topology,
  host: Host,
  address: string,
  seconds: number,
): Promise<Measured> {
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const interval = 0.1;
  const pings = Math.max(5, Math.floor((seconds - 1.5) / interval));
  return await ping(net, host, address, { pings, pingInterval: interval });
}

/**
 * CPU seconds per GB of `bytes` for each of `processes` (summed by label),
 * from readings before and after; an Error if either reading failed.
 */
function cpuPerGigabyte(
  processes: MeasuredProcess[],
  before: number[] | Error,
  after: number[] | Error,
  bytes: number,
): Record<string, number> | Error {
  if (before instanceof Error) return before;
  if (after instanceof Error) return after;
  const perGb: Record<string, number> = {};
  processes.forEach((process, i) => {
    perGb[process.label] = (perGb[process.label] ?? 0) + (after[i] - before[i]) / (bytes / 1e9);
  });
  return perGb;
}

/** `cpuSeconds` of each process, or why one cannot be read (e.g. it exited). */
function readCpu(processes: MeasuredProcess[]): number[] | Error {
  try {
    return processes.map((process) => cpuSeconds(process.pid));
  } catch (error) {
    return new Error(`CPU time not readable: ${(error as Error).message}`);
  }
}

/**
 * Measures one path at the loss currently applied (`lossPercent`, for the
 * result): iperf3 from `client` to `address` (with the CPU time of
 * `processes` over it and, when there is no loss, pings over its middle: the
 * loaded ping), iperf3 back (`-R`), then, when there is no loss, an idle
 * ping, four streams up and the UDP packet rate. A failed
 * iperf3 run is described by `tcpFailure` (default "iperf3 failed: ...").
 */
export async function measurePath(
  name: string,
  net: Topology,
  client: Host,
  address: string,
  options: MeasureOptions,
  tcpFailure: (error: string) => string = (error) => `iperf3 failed: ${error}`,
  lossPercent = 0,
  processes: MeasuredProcess[] = [],
): Promise<PathResult> {
  const notes: string[] = [];
  const label = lossPercent > 0 ? ` at ${lossPercent} % loss` : "";
  const figure = (what: string, measured: Measured, failure = (e: string) => e) => {
    if (!measured.ok) notes.push(`${what}${label}: ${failure(measured.error)}`);
    else if (measured.note) notes.push(`${what}: ${measured.note}`);
    return measured.ok ? measured.value : null;
  };
  const throughput = async (direction: Direction, streams = 1) => {
    let tcp = await iperf3(net, client, address, options, IPERF_PORT, direction, streams);
    // Under heavy loss the server may still be closing the previous test.
    for (let retry = 0; retry < 3 && !tcp.ok && /busy/.test(tcp.error); retry++) {
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      tcp = await iperf3(net, client, address, options, IPERF_PORT, direction, streams);
    }
    const what = streams === 1 ? direction : `${direction} ${streams} streams`;
    return figure(what, tcp, tcpFailure);
  };
  const cpuBefore = readCpu(processes);
  // Without loss, the loaded ping runs over this upload (ICMP: a negligible share of its CPU).
  const [gbps, loadedPing] = await Promise.all([
    throughput("up"),
    lossPercent === 0 ? pingDuringUpload(net, client, address, options.seconds) : null,
  ]);
  const cpuAfter = readCpu(processes);
  let cpuPerGb: Record<string, number> | null = null;
  if (gbps !== null && processes.length > 0) {
    const perGb = cpuPerGigabyte(processes, cpuBefore, cpuAfter, gbps * 1e9 / 8 * options.seconds);
    if (perGb instanceof Error) notes.push(`CPU s/GB: ${perGb.message}`);
    else cpuPerGb = perGb;
  }
  const downGbps = await throughput("down");
  const result: PathResult = {
    name,
    lossPercent,
    gbps,
    downGbps,
    fourStreamGbps: null,
    udpKpps: null,
    pingMs: null,
    loadedPingMs: null,
    cpuPerGb,
    notes,
  };
  if (lossPercent > 0) return result;
  result.loadedPingMs = figure(
    "loaded ping",
    gbps !== null && loadedPing ? loadedPing : { ok: false, error: "the upload under it failed" },
  );
  result.pingMs = figure("ping", await ping(net, client, address, options));
  result.fourStreamGbps = await throughput("up", 4);
  // Last: a UDP flood fills every queue on the path, which would skew what follows it.
  result.udpKpps = figure("UDP", await udpRate(net, client, address, options));
  return result;
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
  processes: MeasuredProcess[] = [],
): Promise<PathResult[]> {
  const results: PathResult[] = [];
  try {
    for (const level of options.losses ?? [0]) {
      await loss.set(level);
      results.push(
        await measurePath(name, net, client, address, options, tcpFailure, level, processes),
      );
    }
  } finally {
    await loss.set(0);
  }
  return results;
}
