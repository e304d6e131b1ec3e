/**
 * ztna through two NATs, set up like tests/e2e_relay_test.ts: the NAT
 * topology (agent and connector each behind its own NAT, relay on the
 * "public" side; NATs that drop unsolicited packets to themselves, as home
 * routers do), `main.ts connector` forwarding the service's port 5201 to an
 * iperf3 server on 127.0.0.1 in the connector's namespace, and `main.ts
 * agent` with a TUN device routing the service IP. In `relay` mode the agent
 * runs with `--relay-only`; in `direct` mode the session is measured once it
 * went direct, and the time from the agent's start to its session on the relay
 * and to the direct path is reported; `kernel` mode is `direct` with the
 * connector in its kernel-forwarding mode (`--tun`: kernel TCP carries the
 * flows to iperf3). The CPU time of relay, connector and agent is measured
 * over the single-stream upload. iperf3 and ping run from the agent's
 * namespace to the service IP, each way, at each loss level asked for (UDP
 * to and from the agent dropped at random in the agent's NAT, as the faults
 * tests do). Up to three last stderr lines of each node (warnings and up) are
 * added to the first result's notes.
 *
 * @module
 */
import { destroyOnInterrupt, throwIfInterrupted } from "./interrupt.ts";
import { LossRules } from "./loss.ts";
import { IPERF_PORT, type MeasureOptions, measureUnderLoss, startIperf3Server } from "./measure.ts";
import type { PathResult } from "./result.ts";
import {
  type Child,
  createNatTopology,
  denoCommand,
  makeTestOrg,
  RELAY_MAIN,
  RELAY_NAME,
} from "./support.ts";

/** Table labels of the ztna paths. */
export const ZTNA = {
  relay: "ztna over the relay",
  direct: "ztna direct",
  kernel: "ztna direct (kernel connector)",
} as const;

/** How ztna is measured: over the relay, direct, or direct with the connector's kernel mode. */
export type ZtnaMode = keyof typeof ZTNA;

/** The connector's TUN in the kernel mode (its own namespace: no clash with the agent's). */
const CONNECTOR_TUN = "ztnac0";
const TOPOLOGY_PREFIX: Record<ZtnaMode, string> = {
  relay: "zbenchr",
  direct: "zbenchd",
  kernel: "zbenchk",
};

/** Times from the agent's start (ms). */
export interface StartTimes {
  /** To its session being up through the relay (its first packet can cross). */
  relayMs: number;
  /** To the session's move to the direct path, or null if it did not go direct. */
  directMs: number | null;
}

const MAIN = new URL("../../main.ts", import.meta.url);
const SERVICE_IP = "100.80.0.10";
const RELAY_PORT = 4433;

/** Options of the ztna path. */
export interface ZtnaOptions extends MeasureOptions {
  /**
   * Run relay, connector and agent with `--cpu-prof` (and `--cpu-prof-md`),
   * writing `relay`, `connector` and `agent` profiles into this folder.
   */
  cpuProfileDir?: string;
}

/** `deno run ... SCRIPT ARGS`, profiled as NAME when `cpuProfileDir` is set. */
function nodeCommand(
  script: URL,
  args: string[],
  name: string,
  cpuProfileDir: string | undefined,
): string[] {
  const argv = denoCommand(script, args);
  if (cpuProfileDir === undefined) return argv;
  if (argv[1] !== "run") throw new Error(`unexpected deno command ${argv.join(" ")}`);
  const profile = [
    ...["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`, `--cpu-prof-name=${name}.cpuprofile`],
    "--cpu-prof-md",
  ];
  return [argv[0], "run", ...profile, ...argv.slice(2)];
}

/** Up to `count` last warning-or-worse stderr lines of `child`, as notes labelled `label`. */
function stderrNotes(child: Child, label: string, count = 3): string[] {
  return (child.stderr?.tail() ?? []).filter((line) => /\[(WRN|ERR|FTL)\]/.test(line))
    .slice(-count).map((line) => `${label} stderr: ${line}`);
}

/** Waits for a node's "up" line on stdout; on failure, its last stderr lines tell why. */
async function started(child: Child, label: string): Promise<string> {
  try {
    return await child.nextLine(20_000);
  } catch (error) {
    const stderr = child.stderr?.tail().join("\n  ") ?? "";
    throw new Error(`${label} did not come up: ${(error as Error).message}\n  ${stderr}`);
  }
}

/** A failed iperf3 connect means the connector refused or dropped TCP. */
function describeTcpFailure(error: string): string {
  return /connect|refused|timed out|reset/i.test(error)
    ? `TCP not available through ztna (iperf3: ${error})`
    : `iperf3 failed: ${error}`;
}

/**
 * Measures ztna over the relay or direct; always tears the namespaces down.
 * Resolves with the path's figures (one per loss level) and the agent's
 * start times.
 */
export async function benchZtna(
  options: ZtnaOptions,
  mode: ZtnaMode,
): Promise<{ results: PathResult[]; start: StartTimes }> {
  const topology = await createNatTopology(TOPOLOGY_PREFIX[mode], { homeRouters: true });
  const org = await makeTestOrg("bench");
  const release = destroyOnInterrupt(topology.net);
  const profile = options.cpuProfileDir;
  try {
    throwIfInterrupted();
    const relayId = await org.issue("relay-1", "relay");
    const connectorId = await org.issue("conn-1", "connector", ["web"]);
    const agentId = await org.issue("alice", "agent");
    const { net, relay: relayHost, connector: connectorHost, agent: agentHost } = topology;
    const relay = net.spawn(
      relayHost,
      nodeCommand(
        RELAY_MAIN,
        [
          ...["0.0.0.0", String(RELAY_PORT), relayId.certPath, relayId.keyPath, org.caPath],
        ],
        "relay",
        profile,
      ),
      { stderr: "capture" },
    );
    const ready = await started(relay, "relay");
    if (ready !== `READY ${RELAY_PORT}`) throw new Error(`relay: ${ready}`);
    await startIperf3Server(net, connectorHost, "127.0.0.1");
    const common = [
      ...["--relay", `${topology.addresses.relay}:${RELAY_PORT}`, "--relay-name", RELAY_NAME],
      ...["--ca", org.caPath, "--log-level", "info"],
    ];
    const connector = net.spawn(
      connectorHost,
      nodeCommand(
        MAIN,
        [
          ...["connector", "--service", "web", "--forward", `127.0.0.1:${IPERF_PORT}`],
          ...["--allow", "alice", "--cert", connectorId.certPath, "--key", connectorId.keyPath],
          ...(mode === "kernel" ? ["--tun", CONNECTOR_TUN] : []),
          ...common,
        ],
        "connector",
        profile,
      ),
      { stderr: "capture" },
    );
    await started(connector, "connector");
    const agent = net.spawn(
      agentHost,
      nodeCommand(
        MAIN,
        [
          ...["agent", "--tun", "ztna0", "--service", `web=${SERVICE_IP}`],
          ...["--cert", agentId.certPath, "--key", agentId.keyPath],
          ...(mode === "relay" ? ["--relay-only"] : []),
          ...common,
        ],
        "agent",
        profile,
      ),
      { stderr: "capture" },
    );
    const agentStarted = performance.now();
    await started(agent, "agent");
    const start: StartTimes = { relayMs: performance.now() - agentStarted, directMs: null };
    if (mode !== "relay") {
      await agent.stderr!.waitFor(/session web: direct /, 10_000).then(
        () => start.directMs = performance.now() - agentStarted,
        () => {},
      );
    }
    const name = ZTNA[mode];
    const agentAddress = topology.addresses.agent;
    const loss = new LossRules(net, [
      { host: topology.natA, chain: "FORWARD", match: ["-p", "udp", "-s", agentAddress] },
      { host: topology.natA, chain: "FORWARD", match: ["-p", "udp", "-d", agentAddress] },
    ]);
    const results = await measureUnderLoss(
      name,
      net,
      agentHost,
      SERVICE_IP,
      options,
      loss,
      describeTcpFailure,
      [
        { label: "relay", pid: relay.process.pid },
        { label: "connector", pid: connector.process.pid },
        { label: "agent", pid: agent.process.pid },
      ],
    );
    const result = results[0];
    if (mode !== "relay" && start.directMs === null) {
      result.notes.push("the session did not go direct within 10 s: measured on the relay");
    }
    // Stopped gracefully (SIGTERM), so profiles get written and stderr is complete.
    await Promise.all([agent.stop(), connector.stop(), relay.stop()]);
    result.notes.push(
      ...stderrNotes(relay, "relay"),
      ...stderrNotes(connector, "connector"),
      ...stderrNotes(agent, "agent"),
    );
    return { results, start };
  } finally {
    try {
      await topology.net.destroy();
    } finally {
      release();
      await org.cleanup();
    }
  }
}
