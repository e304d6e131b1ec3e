/**
 * The relay suite: a real `ztna relay` process on loopback, measured alone.
 *
 * - Forwarding: an agent in this process sends 1100-byte DATAGRAMs as fast as
 *   its session takes them, through the relay, to a real `ztna connector`
 *   (which drops them: they are not IP packets). The figure is the relay's
 *   forwarded packets per second of its own CPU time (user + system, from
 *   /proc): packets per second per core, whatever the senders' speed.
 * - Idle sessions: `sessions` sessions admitted at the relay and left idle (a
 *   connector node in this process accepts every announcement and waits for
 *   handshakes that never come; the agent only asks), and the relay's
 *   resident-set growth for them.
 */
import { readStatus } from "../lib/admin/client.ts";
import { parseHostPort, type SocketAddress } from "../lib/net/address.ts";
import { Node } from "../lib/node/node.ts";
import {
  BENCH_RELAY_NAME,
  BenchOrg,
  type BenchProcess,
  cpuSeconds,
  rss,
  spawnBench,
} from "./processes.ts";

const PAYLOAD = 1100;
const SETTLE_MS = 2_000;
/** Sessions the agent asks for at once while filling the relay. */
const OPEN_BATCH = 200;

/** Options of the relay suite. */
export interface RelayBenchOptions {
  /** Seconds of forwarding. */
  seconds: number;
  /** Idle sessions to hold. */
  sessions: number;
}

/** The relay's count of forwarded DATAGRAMs, from its admin socket. */
async function forwarded(socket: string): Promise<number> {
  const status = await readStatus(socket) as { stats: { datagramsForwarded: number } };
  return status.stats.datagramsForwarded;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

/** Runs the suite and prints its figures. */
export async function runRelaySuite(options: RelayBenchOptions): Promise<void> {
  const org = await BenchOrg.create("ztna-bench-relay-");
  const children: BenchProcess[] = [];
  const nodes: Node[] = [];
  try {
    const socket = `${org.dir}/relay.sock`;
    const relay = spawnBench([
      "relay",
      ...["--listen", "127.0.0.1:0", "--no-stun", "--admin-socket", socket],
      ...org.flags(await org.issue("relay-1", "relay")),
      ...["--max-sessions-per-agent", String(options.sessions + 10)],
      ...["--requests-per-second", String(Math.max(50, options.sessions))],
      ...["--rate-pps", "10000000"],
    ]);
    children.push(relay);
    const listening = await relay.line(/listening on 127\.0\.0\.1:\d+/);
    const relayAddress: SocketAddress = parseHostPort(/listening on (\S+)/.exec(listening)![1]);
    const node = async (name: string, role: "agent" | "connector", extra = {}) => {
      const created = new Node({
        identity: await org.issue(name, role, role === "connector" ? ["idle"] : []),
        relay: relayAddress,
        relayName: BENCH_RELAY_NAME,
        role,
        bind: { hostname: "127.0.0.1", port: 0 },
        relayOnly: true,
        ...extra,
      });
      nodes.push(created);
      await created.start();
      return created;
    };

    // Forwarding through one session to a real connector.
    const connector = spawnBench([
      "connector",
      ...["--service", "web", "--forward", "127.0.0.1:9", "--allow", "*"],
      ...["--relay", `127.0.0.1:${relayAddress.port}`, "--relay-name", BENCH_RELAY_NAME],
      "--relay-only",
      ...["--admin-socket", `${org.dir}/connector.sock`],
      ...org.flags(await org.issue("conn-1", "connector", ["web"])),
    ]);
    children.push(connector);
    await connector.line(/connector publishing web/);
    const agent = await node("agent-1", "agent");
    const session = (await agent.openSession("web")).connection!;
    const packet = new Uint8Array(PAYLOAD).fill(0xff); // not an IP packet: dropped at the connector
    const deadline = performance.now() + options.seconds * 1000;
    let sent = 0;
    const before = { forwarded: await forwarded(socket), cpu: await cpuSeconds(relay.process.pid) };
    const started = performance.now();
    while (performance.now() < deadline) {
      for (let i = 0; i < 256 && session.sendDatagram(packet); i++) sent++;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const elapsed = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = { forwarded: await forwarded(socket), cpu: await cpuSeconds(relay.process.pid) };
    const count = after.forwarded - before.forwarded;
    const cpu = after.cpu - before.cpu;

    // Idle sessions admitted at the relay.
    await node("conn-idle", "connector", {
      sessionLimits: {
        maxSessions: options.sessions + 10,
        maxSessionsPerAgent: options.sessions + 10,
        handshakeWaitMs: 3_600_000,
      },
    }).then((idle) => idle.link.register("idle"));
    const asker = await node("agent-idle", "agent");
    await settle();
    const relayBefore = await rss(relay.process.pid);
    for (let opened = 0; opened < options.sessions;) {
      const batch = Math.min(OPEN_BATCH, options.sessions - opened);
      await Promise.all(Array.from({ length: batch }, () => asker.link.openSession("idle")));
      opened += batch;
    }
    await settle();
    const relayAfter = await rss(relay.process.pid);

    console.log(`\nrelay alone (loopback, ${PAYLOAD}-byte DATAGRAMs, one session):`);
    console.log(
      `  forwarded ${count} packets in ${elapsed.toFixed(1)} s (${sent} DATAGRAMs sent, ` +
        `and the session's ACKs back): ${(count / elapsed / 1000).toFixed(0)} kpps ` +
        `using ${cpu.toFixed(2)} CPU s, ${(count / cpu / 1000).toFixed(0)} kpps per core`,
    );
    console.log(
      `  ${options.sessions} idle sessions: +${
        ((relayAfter - relayBefore) / 1024 / 1024).toFixed(1)
      } MiB ` +
        `(${((relayAfter - relayBefore) / options.sessions / 1024).toFixed(2)} KiB each; ` +
        `${(relayAfter / 1024 / 1024).toFixed(0)} MiB in all)`,
    );
  } finally {
    for (const node of nodes) await node.close();
    for (const child of children) await child.stop();
    await org.cleanup();
  }
}
