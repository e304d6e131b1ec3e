/**
 * `prlimit --nofile=64:64 deno run -A connector_fd_main.ts --udp-echo PORT --tcp-echo PORT
 * --flows N --connections M`: a connector session's terminator and TCP bridge (in process,
 * driven by AgentWire) under a tiny open-file limit, against echo servers in another process.
 * N UDP flows are opened until descriptors run out, then M TCP connections while none are
 * left; then every TCP client resets and the UDP flows expire (1 s idle), and a new UDP flow
 * and a new TCP connection must work. Prints one JSON line (FdReport) and exits 0; logs at
 * warning level go to stderr.
 */
import { parseArgs } from "node:util";
import { configureLogging } from "../../lib/log.ts";
import { ConnectorLimits, type ConnectorLimitStats } from "../../lib/connector/limits.ts";
import { openFileLimit } from "../../lib/connector/open_file_limit.ts";
import { tcpHandler } from "../../lib/connector/tcp_bridge.ts";
import { Terminator } from "../../lib/connector/terminator.ts";
import { pseudoRandomBytes, sha256 } from "./bytes.ts";
import { AgentWire } from "./agent_wire.ts";

/** What the run found. */
export interface FdReport {
  openFileLimit: number | null;
  /** UDP flows opened, and refused, out of N; echo replies and ICMP errors for them. */
  udpOpened: number;
  udpRefused: number;
  udpReplies: number;
  icmpErrors: number;
  /** TCP clients (of M) reset by the connector, and those established before that. */
  tcpReset: number;
  tcpEstablished: number;
  /** The limits once everything was refused. */
  exhausted: ConnectorLimitStats;
  /** The limits once the flows expired and the connections were reset. */
  drained: ConnectorLimitStats;
  /** The legitimate UDP flow's reply equals what it sent. */
  udpAfter: boolean;
  /** The legitimate TCP connection's echo, as sha256 of what went and what came back. */
  tcpAfterSent: string;
  tcpAfterReceived: string;
}

const UDP_PORT = 7;
const TCP_PORT = 7;
const IDLE_MS = 1000;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "udp-echo": { type: "string" },
    "tcp-echo": { type: "string" },
    flows: { type: "string" },
    connections: { type: "string" },
  },
});
configureLogging({ level: "warning", format: "text" });
// As `ztna connector` does (it waits for SIGINT/SIGTERM from its start): Deno creates its
// signal self-pipe on the first signal binding and panics if descriptors have run out then.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const targets = new Map([[UDP_PORT, { hostname: "127.0.0.1", port: Number(values["udp-echo"]) }]]);
const tcpTargets = new Map([[TCP_PORT, {
  hostname: "127.0.0.1",
  port: Number(values["tcp-echo"]),
}]]);
const limits = new ConnectorLimits({ udpFlowIdleMs: IDLE_MS });
const wire = new AgentWire();
const terminator = new Terminator(
  targets,
  wire.send,
  tcpHandler(wire.send, tcpTargets, limits),
  limits,
);
wire.attach((packet) => terminator.receive(packet));

// UDP flows from agent ports 30000.. until the descriptors run out.
const flows = Number(values.flows);
const hello = new TextEncoder().encode("hello");
for (let i = 0; i < flows; i++) wire.sendUdp(30_000 + i, UDP_PORT, hello);
await wire.settled();
await sleep(500); // the echoes come back
const udpOpened = terminator.udp.stats.flowsOpened;
const udpRefused = terminator.udp.stats.flowsRefused;

// TCP connections while no descriptor is free: each handshake completes, the connect fails.
const clients = Array.from({ length: Number(values.connections) }, () => wire.connect(TCP_PORT));
const opened = await Promise.allSettled(clients.map((client) => client.opened));
await Promise.all(clients.map((client) => client.until(() => client.state === "reset")));
const exhausted = limits.stats();
const udpReplies = wire.udp.length;
const icmpErrors = wire.icmp.length;

await sleep(IDLE_MS * 2.5); // every flow expires
const drained = limits.stats();

wire.udp.length = 0;
wire.sendUdp(40_000, UDP_PORT, hello);
for (let waited = 0; wire.udp.length === 0 && waited < 2000; waited += 10) await sleep(10);
const udpAfter = wire.udp.length === 1 &&
  new TextDecoder().decode(wire.udp[0].payload) === "hello";

const data = pseudoRandomBytes(256 * 1024, 3);
const legit = wire.connect(TCP_PORT);
await legit.opened;
legit.write(data);
legit.end();
await legit.until(() => legit.finReceived || legit.state !== "established");

const report: FdReport = {
  openFileLimit: openFileLimit() ?? null,
  udpOpened,
  udpRefused,
  udpReplies,
  icmpErrors,
  tcpReset: clients.filter((client) => client.state === "reset").length,
  tcpEstablished: opened.filter((result) => result.status === "fulfilled").length,
  exhausted,
  drained,
  udpAfter,
  tcpAfterSent: sha256(data),
  tcpAfterReceived: sha256(legit.receivedData()),
};
console.log(JSON.stringify(report));
terminator.close();
limits.close();
Deno.exit(0);
