/**
 * The memory suite: what one relay connection and one session cost, measured
 * as the resident-set growth of real `ztna relay` and `ztna connector`
 * processes on loopback while `nodes` agents connect (one identity each: the
 * relay holds one connection per identity; spread over holder processes, see
 * memory_nodes_main.ts) and one more agent, in this process, opens `sessions`
 * sessions through the relay to the connector (QUIC handshake done, admitted).
 * Figures are per connection and per session, after a settling pause; V8's
 * heap makes them estimates, not exact costs.
 */
import { formatAddress, parseHostPort, type SocketAddress } from "../lib/net/address.ts";
import { Node } from "../lib/node/node.ts";
import { BENCH_RELAY_NAME, BenchOrg, type BenchProcess, rss, spawnBench } from "./processes.ts";

const NODES_MAIN = new URL("./memory_nodes_main.ts", import.meta.url);
/** Agent nodes per holder process (see memory_nodes_main.ts). */
const NODES_PER_PROCESS = 20;
const RELAY_NAME = BENCH_RELAY_NAME;
const SETTLE_MS = 2_000;

/** Options of the memory suite. */
export interface MemoryOptions {
  nodes: number;
  sessions: number;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Runs the suite and prints its figures. */
export async function runMemorySuite(options: MemoryOptions): Promise<void> {
  const org = await BenchOrg.create("ztna-bench-memory-");
  const children: BenchProcess[] = [];
  const nodes: Node[] = [];
  try {
    const relay = spawnBench([
      "relay",
      "--listen",
      "127.0.0.1:0",
      ...org.flags(await org.issue("relay-1", "relay")),
      "--no-stun",
      ...["--max-sessions-per-agent", String(options.sessions + 10)],
      ...["--requests-per-second", String(options.sessions)],
    ]);
    children.push(relay);
    const listening = await relay.line(/listening on 127\.0\.0\.1:\d+/);
    const relayAddress: SocketAddress = parseHostPort(/listening on (\S+)/.exec(listening)![1]);
    await settle();
    const relayBase = await rss(relay.process.pid);

    const prefixes: string[] = [];
    for (let i = 0; i < options.nodes; i++) {
      await org.issue(`agent-${i}`, "agent");
      prefixes.push(`${org.dir}/agent-${i}`);
    }
    for (let at = 0; at < prefixes.length; at += NODES_PER_PROCESS) {
      const batch = prefixes.slice(at, at + NODES_PER_PROCESS);
      const holder = spawnBench(
        [
          "--relay",
          formatAddress(relayAddress),
          "--relay-name",
          RELAY_NAME,
          "--ca",
          org.caFile,
          ...batch,
        ],
        NODES_MAIN,
      );
      children.push(holder);
      await holder.line(new RegExp(`^ready ${batch.length}$`), 60_000);
    }
    await settle();
    const relayWithNodes = await rss(relay.process.pid);

    const connector = spawnBench([
      "connector",
      ...["--service", "web", "--forward", "127.0.0.1:9", "--allow", "*"],
      ...["--relay", `127.0.0.1:${relayAddress.port}`, "--relay-name", RELAY_NAME, "--relay-only"],
      ...org.flags(await org.issue("conn-1", "connector", ["web"])),
      ...["--max-sessions-per-agent", String(options.sessions + 10)],
    ]);
    children.push(connector);
    await connector.line(/connector publishing web/);
    const agent = new Node({
      identity: await org.issue("agent-sessions", "agent"),
      relay: relayAddress,
      relayName: RELAY_NAME,
      role: "agent",
      bind: { hostname: "127.0.0.1", port: 0 },
      relayOnly: true,
    });
    nodes.push(agent);
    await agent.start();
    await settle();
    const connectorBase = await rss(connector.process.pid);
    const relayBeforeSessions = await rss(relay.process.pid);
    for (let opened = 0; opened < options.sessions;) {
      const batch = Math.min(20, options.sessions - opened);
      await Promise.all(Array.from({ length: batch }, () => agent.openSession("web")));
      opened += batch;
    }
    await settle();
    const connectorWithSessions = await rss(connector.process.pid);
    const relayWithSessions = await rss(relay.process.pid);

    console.log(`\nmemory (resident set growth, loopback, ${SETTLE_MS} ms settling):`);
    console.log(
      `  relay: ${mib(relayBase)} at start; ${options.nodes} connected nodes: ` +
        `${kib((relayWithNodes - relayBase) / options.nodes)} per relay connection`,
    );
    console.log(
      `  connector: ${mib(connectorBase)} at start; ${options.sessions} admitted sessions: ` +
        `${kib((connectorWithSessions - connectorBase) / options.sessions)} per session`,
    );
    console.log(
      `  relay: ${kib((relayWithSessions - relayBeforeSessions) / options.sessions)} per session`,
    );
  } finally {
    for (const node of nodes) await node.close();
    // Every child stops on SIGTERM (the holders' nodes need no goodbye: the relay stops too).
    for (const child of children) await child.stop();
    await org.cleanup();
  }
}
