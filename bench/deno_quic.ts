/**
 * Baseline half of the DATAGRAM benchmark: Deno's built-in QUIC (quinn underneath), driven
 * through `Deno.QuicEndpoint` / `Deno.connectQuic` (requires `--unstable-net`).
 *
 * A client sends fixed-size QUIC DATAGRAMs to a server on 127.0.0.1 as fast as the API allows;
 * the server counts what it actually RECEIVES. The figure is delivered DATAGRAMs over the window
 * from the first to the last received DATAGRAM (see {@link ReceiveStats}).
 *
 * Process layout: Deno drives quinn on the isolate's own (single-threaded) event loop, so with
 * `processes: 1` (default) sender, receiver and both QUIC stacks share ONE core; with
 * `processes: 2` the receiver runs in `bench/deno_quic_peer.ts` on its own core (~1.9x the rate
 * on an idle 2-vCPU box, but very sensitive to any other load). Compare like with like: use the
 * layout that matches how the libquiche endpoint is benchmarked.
 *
 * Run: `deno run -A --unstable-net bench/deno_quic.ts CERT.pem KEY.pem CA.pem
 *       [--processes=1|2] [--duration-ms=2000] [--payload=1100] [--in-flight=N] [--runs=N]
 *       [--server-name=bench.test]`
 *
 * @module
 */

import { formatResult, type ThroughputResult } from "./result.ts";

/** ALPN protocol both benchmark endpoints announce (QUIC requires ALPN). */
export const BENCH_ALPN = "ztna-bench-dgram";

/**
 * Default number of `sendDatagram()` promises kept outstanding by the sender. Each call copies
 * the buffer into quinn's DATAGRAM send queue and resolves once it is queued (it waits for queue
 * space, it does not drop). Measured on a 2-vCPU VM: windows of 2-8 are equal within noise,
 * 1 is slightly slower, 16+ are 5-10 % slower (more pending ops to poll per event-loop turn).
 */
export const DEFAULT_IN_FLIGHT = 4;

/** After the sender's "done" message, stop waiting for stragglers after this much silence. */
const QUIET_MS = 200;

/** Upper bound for waiting on the peer's connection close during shutdown. */
const CLOSE_WAIT_MS = 2_000;

/** Options for {@link benchDenoQuic}. */
export interface DenoQuicBenchOptions {
  /** Size of each DATAGRAM payload in bytes (must not exceed the connection's maxDatagramSize). */
  payloadBytes: number;
  /** How long the client keeps sending, in milliseconds. */
  durationMs: number;
  /** Server certificate chain, PEM. */
  certificatePem: string;
  /** Server private key, PEM (PKCS#8). */
  privateKeyPem: string;
  /** CA certificate(s), PEM, the client uses to verify the server. */
  caPem: string;
  /** Name the server certificate must be valid for (sent as SNI and verified by the client). */
  serverName: string;
  /** 1: both endpoints in this isolate (default); 2: receiver in a spawned Deno process. */
  processes?: 1 | 2;
  /** Outstanding `sendDatagram()` promises on the sender (default {@link DEFAULT_IN_FLIGHT}). */
  inFlight?: number;
}

/**
 * What the receiver observed. Timing: `firstToLastMs` is `performance.now()` at the arrival (in
 * JS, i.e. when `readDatagram()` resolved) of the last DATAGRAM minus that of the first one. All
 * `received` DATAGRAMs are counted, so the rate `received / firstToLastMs` counts N arrivals over
 * N-1 inter-arrival gaps: it is biased high by 1/N (< 0.001 % at the usual 10^5+ packets).
 * Handshake, sender warm-up before the first arrival and the drain after the last are excluded.
 */
export interface ReceiveStats {
  /** DATAGRAMs returned by `readDatagram()`. */
  received: number;
  /** Sum of their byte lengths. */
  bytes: number;
  /** Milliseconds from the first to the last arrival. */
  firstToLastMs: number;
  /** DATAGRAMs the sender reported as handed to its QUIC stack. */
  sent: number;
}

/** Message the sender writes on the control stream once it has stopped sending. */
interface DoneMessage {
  sent: number;
}

/** Reads a whole QUIC receive stream as UTF-8 text. */
async function readAllText(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

/** Writes `text` to a QUIC send stream and finishes (FIN) it. */
async function writeAllText(stream: WritableStream<Uint8Array>, text: string): Promise<void> {
  const writer = stream.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
}

/** Resolves after `ms` milliseconds; the timer is always cleared or fired (no leaks). */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Receiver side of one run on an accepted, handshaken connection: counts every DATAGRAM, waits
 * for the sender's "done" message on the client-opened bidirectional control stream, drains
 * stragglers (until all `sent` arrived or {@link QUIET_MS} of silence), answers with its
 * {@link ReceiveStats} on the same stream, then waits for the client to close the connection.
 * Returns the same stats.
 */
export async function receiveDatagrams(conn: Deno.QuicConn): Promise<ReceiveStats> {
  let received = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  const reading = (async () => {
    try {
      for (;;) {
        const d = await conn.readDatagram();
        const now = performance.now();
        if (received === 0) first = now;
        last = now;
        received++;
        bytes += d.byteLength;
      }
    } catch {
      // readDatagram() rejects once the connection is closed: that is the normal end.
    }
  })();

  try {
    const closed = conn.closed.catch(() => undefined);
    const streams = conn.incomingBidirectionalStreams.getReader();
    const { value: control } = await streams.read();
    streams.releaseLock();
    if (control === undefined) throw new Error("connection ended before the control stream");
    const done = JSON.parse(await readAllText(control.readable)) as DoneMessage;

    // Drain: the DATAGRAMs queued by the sender before "done" may still be on their way.
    const doneAt = performance.now();
    while (received < done.sent && performance.now() - Math.max(last, doneAt) < QUIET_MS) {
      await delay(5);
    }
    const stats: ReceiveStats = {
      received,
      bytes,
      firstToLastMs: received > 0 ? last - first : 0,
      sent: done.sent,
    };
    await writeAllText(control.writable, JSON.stringify(stats));

    // The client closes once it has read the stats; don't hang if that close gets lost.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([closed, new Promise((r) => timer = setTimeout(r, CLOSE_WAIT_MS))]);
    clearTimeout(timer);
    return stats;
  } finally {
    conn.close({ closeCode: 0, reason: "done" });
    await reading;
  }
}

/**
 * Listens on 127.0.0.1 (ephemeral port) with the given certificate. Returns the listener (its
 * `endpoint.addr.port` is the port); the caller accepts, then stops it and closes the endpoint.
 */
export function listenBench(certificatePem: string, privateKeyPem: string): Deno.QuicListener {
  const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1", port: 0 });
  return endpoint.listen({
    cert: certificatePem,
    key: privateKeyPem,
    alpnProtocols: [BENCH_ALPN],
  });
}

/** Accepts one connection on `listener`, runs {@link receiveDatagrams}, closes everything. */
export async function serveOnce(listener: Deno.QuicListener): Promise<ReceiveStats> {
  try {
    const conn = await listener.accept();
    await conn.handshake;
    return await receiveDatagrams(conn);
  } finally {
    listener.stop();
    listener.endpoint.close();
  }
}

/**
 * Sender side: sends `payloadBytes`-byte DATAGRAMs for `durationMs`, keeping up to `inFlight`
 * `sendDatagram()` promises outstanding (sliding window), then reports the count on a control
 * stream and returns the receiver's stats. Closes the connection and its endpoint.
 */
async function sendDatagrams(
  conn: Deno.QuicConn,
  payloadBytes: number,
  durationMs: number,
  inFlight: number,
): Promise<ReceiveStats> {
  try {
    if (conn.maxDatagramSize < payloadBytes) {
      throw new RangeError(
        `payload ${payloadBytes} B exceeds maxDatagramSize ${conn.maxDatagramSize} B`,
      );
    }
    // sendDatagram() copies the bytes, so one buffer can be reused for every DATAGRAM.
    const payload = new Uint8Array(payloadBytes).fill(0x5a);
    const window: Promise<void>[] = new Array(inFlight);
    let sent = 0;
    const deadline = performance.now() + durationMs;
    while (performance.now() < deadline) {
      const slot = sent % inFlight;
      if (sent >= inFlight) await window[slot];
      window[slot] = conn.sendDatagram(payload);
      sent++;
    }
    await Promise.all(window.slice(0, Math.min(sent, inFlight)));

    const control = await conn.createBidirectionalStream();
    const done: DoneMessage = { sent };
    await writeAllText(control.writable, JSON.stringify(done));
    return JSON.parse(await readAllText(control.readable)) as ReceiveStats;
  } finally {
    conn.close({ closeCode: 0, reason: "done" });
    conn.endpoint.close();
  }
}

/** Connects the benchmark client to 127.0.0.1:`port`, verifying `serverName` against `caPem`. */
async function connectBench(
  port: number,
  serverName: string,
  caPem: string,
): Promise<Deno.QuicConn> {
  const conn = await Deno.connectQuic({
    hostname: "127.0.0.1",
    port,
    serverName,
    caCerts: [caPem],
    alpnProtocols: [BENCH_ALPN],
  });
  await conn.handshake;
  return conn;
}

/** Input the parent writes (as JSON) to the stdin of `bench/deno_quic_peer.ts`. */
export interface PeerConfig {
  /** Server certificate chain, PEM. */
  certificatePem: string;
  /** Server private key, PEM. */
  privateKeyPem: string;
}

/** Spawns the receiver process and runs the sender against it. */
async function benchTwoProcesses(
  options: DenoQuicBenchOptions,
  inFlight: number,
): Promise<ReceiveStats> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--unstable-net",
      "--allow-net=127.0.0.1",
      new URL("./deno_quic_peer.ts", import.meta.url).href,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const config: PeerConfig = {
    certificatePem: options.certificatePem,
    privateKeyPem: options.privateKeyPem,
  };
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stats: ReceiveStats;
  try {
    await writeAllText(child.stdin, JSON.stringify(config));
    // The peer prints `{"port": N}` and a newline once it listens.
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`receiver process exited before listening: ${out}`);
      out += value;
    }
    const { port } = JSON.parse(out.slice(0, out.indexOf("\n"))) as { port: number };
    const conn = await connectBench(port, options.serverName, options.caPem);
    stats = await sendDatagrams(conn, options.payloadBytes, options.durationMs, inFlight);
  } catch (e) {
    try {
      child.kill();
    } catch {
      // Already exited.
    }
    await lines.cancel();
    await child.status;
    throw e;
  }
  await lines.cancel();
  const status = await child.status;
  if (!status.success) throw new Error(`receiver process failed with code ${status.code}`);
  return stats;
}

/**
 * Runs one DATAGRAM throughput measurement over Deno's built-in QUIC on loopback and returns
 * what the server actually received, over first-to-last arrival (see {@link ReceiveStats}).
 */
export async function benchDenoQuic(options: DenoQuicBenchOptions): Promise<ThroughputResult> {
  const processes = options.processes ?? 1;
  const inFlight = options.inFlight ?? DEFAULT_IN_FLIGHT;
  if (!Number.isInteger(inFlight) || inFlight < 1) throw new RangeError("inFlight must be >= 1");
  let stats: ReceiveStats;
  if (processes === 2) {
    stats = await benchTwoProcesses(options, inFlight);
  } else {
    const listener = listenBench(options.certificatePem, options.privateKeyPem);
    const serving = serveOnce(listener);
    let sending: Promise<ReceiveStats>;
    try {
      const conn = await connectBench(
        listener.endpoint.addr.port,
        options.serverName,
        options.caPem,
      );
      sending = sendDatagrams(conn, options.payloadBytes, options.durationMs, inFlight);
    } catch (e) {
      listener.stop();
      listener.endpoint.close();
      await serving.catch(() => undefined);
      throw e;
    }
    // Wait for both sides even if one fails, so nothing is left running.
    const [served, sent] = await Promise.allSettled([serving, sending]);
    if (sent.status === "rejected") throw sent.reason;
    if (served.status === "rejected") throw served.reason;
    stats = served.value;
  }
  if (stats.received < 2) {
    throw new Error(`only ${stats.received} of ${stats.sent} DATAGRAMs arrived`);
  }
  return {
    name: processes === 2 ? "deno-builtin-2proc" : "deno-builtin",
    packets: stats.received,
    bytes: stats.bytes,
    seconds: stats.firstToLastMs / 1000,
    sent: stats.sent,
  };
}

/** Value of a `--name=value` command-line flag, if present. */
function flag(args: string[], name: string): string | undefined {
  const prefix = `--${name}=`;
  return args.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

if (import.meta.main) {
  const paths = Deno.args.filter((a) => !a.startsWith("--"));
  if (paths.length !== 3) {
    console.error(
      "usage: deno run -A --unstable-net bench/deno_quic.ts CERT.pem KEY.pem CA.pem " +
        "[--processes=1|2] [--duration-ms=2000] [--payload=1100] [--in-flight=N] [--runs=N] " +
        "[--server-name=bench.test]",
    );
    Deno.exit(2);
  }
  const [certificatePem, privateKeyPem, caPem] = await Promise.all(
    paths.map((p) => Deno.readTextFile(p)),
  );
  const inFlight = flag(Deno.args, "in-flight");
  const runs = Number(flag(Deno.args, "runs") ?? "1");
  for (let i = 0; i < runs; i++) {
    const result = await benchDenoQuic({
      payloadBytes: Number(flag(Deno.args, "payload") ?? "1100"),
      durationMs: Number(flag(Deno.args, "duration-ms") ?? "2000"),
      certificatePem,
      privateKeyPem,
      caPem,
      serverName: flag(Deno.args, "server-name") ?? "bench.test",
      processes: flag(Deno.args, "processes") === "2" ? 2 : 1,
      inFlight: inFlight === undefined ? undefined : Number(inFlight),
    });
    console.log(formatResult(result));
  }
}
