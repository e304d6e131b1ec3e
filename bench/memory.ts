/**
 * The memory suite: what one relay connection and one session cost, measured
 * as the resident-set growth of real `ztna relay` and `ztna connector`
 * processes on loopback while `nodes` agents connect (one identity each: the
 * relay holds one connection per identity; spread over holder processes, see
 * memory_nodes_main.ts) and one more agent, in this process, opens `sessions`
 * sessions through the relay to the connector (QUIC handshake done, admitted). Figures are per connection and per session, after a settling
 * pause; V8's heap makes them estimates, not exact costs.
 */
import { createCa, grantNames, issueIdentity, writeIdentityFiles } from "../lib/pki/mod.ts";
import { denoCommand } from "../lib/netns/deno_command.ts";
import { formatAddress, parseHostPort, type SocketAddress } from "../lib/net/address.ts";
import type { NodeIdentity } from "../lib/node/configs.ts";
import { Node } from "../lib/node/node.ts";

const MAIN = new URL("../main.ts", import.meta.url);
const NODES_MAIN = new URL("./memory_nodes_main.ts", import.meta.url);
/** Agent nodes per holder process (see memory_nodes_main.ts). */
const NODES_PER_PROCESS = 20;
const RELAY_NAME = "relay.bench";
const SETTLE_MS = 2_000;

/** Options of the memory suite. */
export interface MemoryOptions {
  nodes: number;
  sessions: number;
}

/** A child `ztna` process whose output lines are searched. */
interface ZtnaProcess {
  process: Deno.ChildProcess;
  /** Resolves with the first line of stdout or stderr matching `pattern`. */
  line(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

function spawn(args: string[], script: URL = MAIN): ZtnaProcess {
  const [command, ...rest] = denoCommand(script, args);
  const process = new Deno.Command(command, {
    args: rest,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  let text = "";
  const waiters = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      // Keep the tail only: the lines searched come early, logs go on.
      text = (text + chunk).slice(-65_536);
      for (const wake of waiters) wake();
    }
  };
  void pump(process.stdout);
  void pump(process.stderr);
  return {
    process,
    async line(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = text.split("\n").find((line) => pattern.test(line));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no line matching ${pattern}:\n${text}`);
        await new Promise<void>((resolve) => {
          waiters.add(resolve);
          setTimeout(resolve, 200);
        });
        waiters.clear();
      }
    },
  };
}

/** Resident set size of process `pid` in bytes (Linux /proc). */
async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Runs the suite and prints its figures. */
export async function runMemorySuite(options: MemoryOptions): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ztna-bench-memory-" });
  const children: ZtnaProcess[] = [];
  const nodes: Node[] = [];
  try {
    const ca = await createCa({ commonName: "ztna bench CA" });
    const { certPath: caFile } = await writeIdentityFiles(ca, dir, "ca");
    const identity = async (
      name: string,
      role: "relay" | "connector" | "agent",
      services: string[] = [],
    ) => {
      const issued = await issueIdentity(ca, {
        commonName: name,
        ...grantNames(name, role, services, role === "relay" ? [RELAY_NAME] : []),
      });
      const files = await writeIdentityFiles(issued, dir, name);
      return { certificateFile: files.certPath, privateKeyFile: files.keyPath, caFile };
    };
    const flags = (
      id: NodeIdentity,
    ) => ["--cert", id.certificateFile, "--key", id.privateKeyFile, "--ca", caFile];

    const relay = spawn([
      "relay",
      "--listen",
      "127.0.0.1:0",
      ...flags(await identity("relay-1", "relay")),
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
      await identity(`agent-${i}`, "agent");
      prefixes.push(`${dir}/agent-${i}`);
    }
    for (let at = 0; at < prefixes.length; at += NODES_PER_PROCESS) {
      const batch = prefixes.slice(at, at + NODES_PER_PROCESS);
      const holder = spawn(
        [
          "--relay",
          formatAddress(relayAddress),
          "--relay-name",
          RELAY_NAME,
          "--ca",
          caFile,
          ...batch,
        ],
        NODES_MAIN,
      );
      children.push(holder);
      await holder.line(new RegExp(`^ready ${batch.length}$`), 60_000);
    }
    await settle();
    const relayWithNodes = await rss(relay.process.pid);

    const connector = spawn([
      "connector",
      ...["--service", "web", "--forward", "127.0.0.1:9", "--allow", "*"],
      ...["--relay", `127.0.0.1:${relayAddress.port}`, "--relay-name", RELAY_NAME, "--relay-only"],
      ...flags(await identity("conn-1", "connector", ["web"])),
      ...["--max-sessions-per-agent", String(options.sessions + 10)],
    ]);
    children.push(connector);
    await connector.line(/connector publishing web/);
    const agent = new Node({
      identity: await identity("agent-sessions", "agent"),
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
    for (const child of children) {
      await child.process.stdin.close().catch(() => {});
      try {
        child.process.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.process.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}
