/**
 * `deno run -A --v8-flags=--expose-gc connector_stall_main.ts --connections N --budget-mib B`:
 * a connector session's terminator and TCP bridge, driven in process by agent-side clients
 * (AgentWire), against two loopback targets: a sink that accepts and never reads, and an
 * echo server. N clients each try to push 8 MiB into the sink; once nothing moves any more
 * for a second, the process measures its memory, and then a legitimate client sends 1 MiB
 * through the echo. Prints one JSON line (StallReport) and exits 0.
 */
import { parseArgs } from "node:util";
import { ConnectorLimits, type ConnectorLimitStats } from "../../lib/connector/limits.ts";
import { tcpHandler } from "../../lib/connector/tcp_bridge.ts";
import { Terminator } from "../../lib/connector/terminator.ts";
import { pseudoRandomBytes, sha256 } from "./bytes.ts";
import { AgentWire } from "./agent_wire.ts";

/** Bytes of memory, as Deno.memoryUsage() reports them. */
export interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
}

/** What the run found. */
export interface StallReport {
  /** Clients established with the sink. */
  established: number;
  /** Clients refused with a RST. */
  refused: number;
  /** Bytes the connector acknowledged to the sink clients in all. */
  ackedToSink: number;
  /** Highest `tcpBufferInUse` seen by sampling every 20 ms. */
  sampledInUseMax: number;
  /** Memory before the clients and with everything stalled (after GCs and malloc_trim). */
  before: Memory;
  stalled: Memory;
  /** Growth of RSS, and of what JavaScript holds (heap used plus ArrayBuffers). */
  rssGrowth: number;
  heldGrowth: number;
  /** The legitimate transfer through the echo. */
  legitBytes: number;
  legitSentSha: string;
  legitReceivedSha: string;
  legitMs: number;
  limits: ConnectorLimitStats;
}

const SINK_PORT = 80;
const ECHO_PORT = 7;
const PER_CLIENT = 8 << 20;
const LEGIT = 1 << 20;

const { values } = parseArgs({
  args: Deno.args,
  options: { connections: { type: "string" }, "budget-mib": { type: "string" } },
});
const connections = Number(values.connections);
const budget = Number(values["budget-mib"]) * 1024 * 1024;

const gc = (globalThis as { gc?: () => void }).gc;
const libc = Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } });
/** Memory after full GCs and after giving freed heap memory back to the system (malloc_trim). */
async function memory(): Promise<Memory> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  libc.symbols.malloc_trim(0n);
  const { rss, heapUsed, external } = Deno.memoryUsage();
  return { rss, heapUsed, external };
}

const held: Deno.Conn[] = [];
const sink = Deno.listen({ hostname: "127.0.0.1", port: 0 });
(async () => {
  for await (const conn of sink) held.push(conn); // accepted, never read
})();
const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
(async () => {
  for await (const conn of echo) conn.readable.pipeTo(conn.writable).catch(() => {});
})();

const targets = new Map([
  [SINK_PORT, { hostname: "127.0.0.1", port: sink.addr.port }],
  [ECHO_PORT, { hostname: "127.0.0.1", port: echo.addr.port }],
]);
const limits = new ConnectorLimits({ tcpBufferBytes: budget });
const wire = new AgentWire();
const terminator = new Terminator(
  targets,
  wire.send,
  tcpHandler(wire.send, targets, limits),
  limits,
);
wire.attach((packet) => terminator.receive(packet));

const payload = pseudoRandomBytes(PER_CLIENT, 7);
const before = await memory();
let sampledInUseMax = 0;
const sampler = setInterval(() => {
  sampledInUseMax = Math.max(sampledInUseMax, limits.stats().tcpBufferInUse);
}, 20);

const clients = Array.from({ length: connections }, () => wire.connect(SINK_PORT));
await Promise.allSettled(clients.map((client) => client.opened));
for (const client of clients) if (client.state === "established") client.write(payload);
const total = () => clients.reduce((sum, client) => sum + client.acked, 0);
for (let last = -1; total() !== last;) {
  last = total();
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
const stalled = await memory();

const legitData = payload.subarray(0, LEGIT);
const started = performance.now();
const legit = wire.connect(ECHO_PORT);
await legit.opened;
legit.write(legitData);
legit.end();
await legit.until(() => legit.finReceived || legit.state !== "established");
const legitMs = performance.now() - started;
clearInterval(sampler);

const report: StallReport = {
  established: clients.filter((client) => client.state === "established").length,
  refused: clients.filter((client) => client.state === "reset").length,
  ackedToSink: total(),
  sampledInUseMax,
  before,
  stalled,
  rssGrowth: stalled.rss - before.rss,
  heldGrowth: stalled.heapUsed + stalled.external - before.heapUsed - before.external,
  legitBytes: legit.receivedBytes,
  legitSentSha: sha256(legitData),
  legitReceivedSha: sha256(legit.receivedData()),
  legitMs: Math.round(legitMs),
  limits: limits.stats(),
};
console.log(JSON.stringify(report));
Deno.exit(0);
