/**
 * `deno task bench`: DATAGRAM throughput of our endpoint (libquiche over FFI)
 * beside Deno's built-in QUIC, in the same run, same payload, same layouts
 * (both endpoints in one process, and receiver in a second process). Runs
 * alternate between implementations so background load hits both alike; the
 * median of each is reported with the ratio ours / built-in.
 *
 * Flags: --runs N (default 3), --duration-ms N (default 2000), --payload N (default 1100).
 *
 * `--suite datagram|tunnel|all` (default all) selects the suites; the tunnel
 * suite (bench/tunnel/) compares iperf3 (TCP one stream each way, four
 * streams up, UDP packet rate), idle and loaded ping and CPU seconds per GB
 * over a raw veth, Debian's and the newest wireguard-go (built from the Go
 * module proxy on first use), and ztna through two NATs over the relay,
 * direct, and direct with the kernel-mode connector (`--tun`), in network
 * namespaces (root), with the time from the agent's start to the direct path. Its flags:
 * --seconds N (iperf3, default 10), --pings N (default 20), --ping-interval S
 * (default 0.2), --cpu-prof-dir DIR (profile ztna's relay, connector and agent),
 * --loss LIST (random loss each way, % , default 0: e.g. `--loss 0,1,5`).
 * Every path runs iperf3 both ways (upload agent → service, download `-R`) at
 * every loss level; lossy levels print a second table with ratios to Debian's
 * wireguard-go at the same level. Columns without loss: up/down Gbit/s (one
 * stream), "4 streams" (`-P 4` up), "UDP kpps" (64-byte datagrams, `-b 0`:
 * thousands received per second at the server), "ping ms" (idle) and "loaded
 * ping" (0.1 s pings during the single-stream upload), ratios of the upload
 * and of the four streams to the baselines; then CPU s/GB of each process
 * over the upload (/proc utime+stime; raw veth: kernel only, "-"), and the
 * issue's targets. Loss runs are opt-in: the default (no loss, 6 paths × 4
 * runs of --seconds, idle pings, set-up) is about 6 minutes at --seconds 10;
 * each extra level adds about 2 minutes at --seconds 10, so
 * `--suite tunnel --loss 0,1,5 --seconds 5` is the loss run of choice
 * (measured: 5 minutes).
 *
 * `--suite memory` (also in `all`): what a relay connection and a session
 * cost in resident memory, on loopback (bench/memory.ts); --nodes N (default
 * 500), --sessions N (default 500).
 *
 * `--suite relay` (also in `all`): the relay alone, on loopback
 * (bench/relay.ts): forwarded packets per second per core of its CPU time
 * (--seconds N of forwarding), and its memory for --idle-sessions N (default
 * 10,000) idle sessions.
 */
import { parseArgs } from "node:util";
import { createCa, issueIdentity, writeIdentityFiles } from "../lib/pki/mod.ts";
import { benchDenoQuic } from "./deno_quic.ts";
import { benchOursQuic } from "./ours_quic.ts";
import { formatResult, gbps, pps, type ThroughputResult } from "./result.ts";
import { runTunnelSuite } from "./tunnel/mod.ts";
import { parseLossList } from "./tunnel/loss.ts";
import { runMemorySuite } from "./memory.ts";
import { runRelaySuite } from "./relay.ts";

const SERVER_NAME = "bench.test";

function median(results: ThroughputResult[]): ThroughputResult {
  return [...results].sort((a, b) => pps(a) - pps(b))[Math.floor(results.length / 2)];
}

async function runDatagramSuite(
  values: { runs: string; "duration-ms": string; payload: string },
): Promise<void> {
  const runs = Number(values.runs), durationMs = Number(values["duration-ms"]);
  const payloadBytes = Number(values.payload);
  const dir = await Deno.makeTempDir({ prefix: "ztna-bench-" });
  try {
    const ca = await createCa({ commonName: "ztna bench CA" });
    const server = await issueIdentity(ca, { commonName: SERVER_NAME, dnsNames: [SERVER_NAME] });
    const { certPath: caFile } = await writeIdentityFiles(ca, dir, "ca");
    const files = await writeIdentityFiles(server, dir, "server");
    console.log(
      `DATAGRAM throughput, ${payloadBytes}-byte payloads, ${durationMs} ms per run, ` +
        `median of ${runs} runs, loopback`,
    );
    for (const processes of [1, 2] as const) {
      const ours: ThroughputResult[] = [], builtin: ThroughputResult[] = [];
      for (let run = 0; run < runs; run++) {
        ours.push(
          await benchOursQuic({
            payloadBytes,
            durationMs,
            certificateFile: files.certPath,
            privateKeyFile: files.keyPath,
            caFile,
            serverName: SERVER_NAME,
            processes,
          }),
        );
        builtin.push(
          await benchDenoQuic({
            payloadBytes,
            durationMs,
            certificatePem: server.certificatePem,
            privateKeyPem: server.privateKeyPem,
            caPem: ca.certificatePem,
            serverName: SERVER_NAME,
            processes,
          }),
        );
      }
      const a = median(ours), b = median(builtin);
      console.log(`\n${processes === 1 ? "one process" : "two processes"}:`);
      console.log(`  ${formatResult({ ...a, name: "ztna (libquiche FFI)" })}`);
      console.log(`  ${formatResult({ ...b, name: "Deno built-in QUIC  " })}`);
      console.log(
        `  ratio ztna / built-in: ${(pps(a) / pps(b)).toFixed(2)}x packets/s, ` +
          `${(gbps(a) / gbps(b)).toFixed(2)}x Gbit/s`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// --- Suite selection -------------------------------------------------------

const SUITES = ["datagram", "tunnel", "memory", "relay", "all"] as const;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      suite: { type: "string", default: "all" },
      runs: { type: "string", default: "3" },
      "duration-ms": { type: "string", default: "2000" },
      payload: { type: "string", default: "1100" },
      seconds: { type: "string", default: "10" },
      pings: { type: "string", default: "20" },
      "ping-interval": { type: "string", default: "0.2" },
      "cpu-prof-dir": { type: "string" },
      nodes: { type: "string", default: "500" },
      sessions: { type: "string", default: "500" },
      "idle-sessions": { type: "string", default: "10000" },
      loss: { type: "string", default: "0" },
    },
  });
  const suite = values.suite as (typeof SUITES)[number];
  if (!SUITES.includes(suite)) {
    console.error(`--suite: expected one of ${SUITES.join(", ")}, got "${values.suite}"`);
    Deno.exit(2);
  }
  const numbers = [
    ...["runs", "duration-ms", "payload", "seconds", "pings", "ping-interval"],
    ...["nodes", "sessions", "idle-sessions"],
  ] as const;
  for (const name of numbers) {
    if (!(Number(values[name]) > 0)) {
      console.error(`--${name}: expected a positive number, got "${values[name]}"`);
      Deno.exit(2);
    }
  }
  let losses: number[];
  try {
    losses = parseLossList(values.loss);
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(2);
  }
  if (suite === "datagram" || suite === "all") await runDatagramSuite(values);
  if (suite === "memory" || suite === "all") {
    await runMemorySuite({ nodes: Number(values.nodes), sessions: Number(values.sessions) });
  }
  if (suite === "relay" || suite === "all") {
    await runRelaySuite({
      seconds: Number(values.seconds),
      sessions: Number(values["idle-sessions"]),
    });
  }
  if (suite === "tunnel" || suite === "all") {
    await runTunnelSuite({
      seconds: Number(values.seconds),
      pings: Number(values.pings),
      pingInterval: Number(values["ping-interval"]),
      cpuProfileDir: values["cpu-prof-dir"],
      losses,
    });
  }
}

if (import.meta.main) await main();
