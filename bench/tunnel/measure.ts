/**
 * iperf3 and ping inside the benchmark's namespaces: a long-running iperf3
 * server, one single-stream TCP run (Gbit/s at the receiver) and a ping run
 * (average RTT).
 *
 * @module
 */
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

/**
 * One single-stream TCP iperf3 run from `client` to `address:port`; the value
 * is the receiver's goodput in Gbit/s.
 */
export async function iperf3(
  net: Topology,
  client: Host,
  address: string,
  options: Pick<MeasureOptions, "seconds">,
  port = IPERF_PORT,
): Promise<Measured> {
  const result = await net.exec(client, [
    ...["iperf3", "-c", address, "-p", String(port), "-t", String(options.seconds)],
    ...["-P", "1", "-J", "--connect-timeout", "5000"],
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
 * Measures one path: iperf3 from `client` to `address`, then ping. A failed
 * iperf3 run is described by `tcpFailure` (default "iperf3 failed: ...").
 */
export async function measurePath(
  name: string,
  net: Topology,
  client: Host,
  address: string,
  options: MeasureOptions,
  tcpFailure: (error: string) => string = (error) => `iperf3 failed: ${error}`,
): Promise<PathResult> {
  const notes: string[] = [];
  const tcp = await iperf3(net, client, address, options);
  if (!tcp.ok) notes.push(tcpFailure(tcp.error));
  const rtt = await ping(net, client, address, options);
  if (!rtt.ok) notes.push(rtt.error);
  else if (rtt.note) notes.push(rtt.note);
  return {
    name,
    gbps: tcp.ok ? tcp.value : null,
    pingMs: rtt.ok ? rtt.value : null,
    notes,
  };
}
