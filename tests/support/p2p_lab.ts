/**
 * ztna in a NAT lab, for direct-path tests: a relay on the lab's public
 * relay host, a connector publishing a web server (and a UDP echo) on one
 * site's host, and an agent with a TUN device on another site's host (or on
 * the same LAN), all as real `ztna` processes. Helpers read the relay's
 * per-session counters, wait for the agent's path switches and capture what
 * crosses the internet between the two sites.
 */
import assert from "node:assert/strict";
import {
  type Child,
  createNatLab,
  denoCommand,
  type Host,
  type LineLog,
  type NatLab,
  type Site,
  type SiteSpec,
} from "../../lib/netns/mod.ts";
import type { SessionSnapshot } from "../../lib/relay/relay.ts";
import type { NodeStatus } from "../../lib/admin/node_status.ts";
import { makeTestOrg, RELAY_NAME, type TestOrg } from "./nodes.ts";

const MAIN = new URL("../../main.ts", import.meta.url);
/** The service's IP on the agent's host. */
export const SERVICE_IP = "100.80.0.10";
/** Where the relay listens. */
export const RELAY_PORT = 4433;

/** What the relay reports on SIGUSR1. */
export interface RelayCounters {
  stats: { datagramsForwarded: number };
  sessions: SessionSnapshot[];
}

/** A running lab with ztna in it. */
export interface P2pLab {
  lab: NatLab;
  org: TestOrg;
  agentSite: Site;
  connectorSite: Site;
  agentHost: Host;
  connectorHost: Host;
  /** The relay and connector processes now (replaced by a restart). */
  relay: Child;
  connector: Child & { stderr: LineLog };
  agent: Child & { stderr: LineLog };
  /**
   * Stops the connector with `signal` (waiting for it to exit), waits
   * `downMs`, starts a new one and waits for its ready line; resolves with the
   * time it printed that line (ms since the epoch).
   */
  restartConnector(signal: "SIGTERM" | "SIGKILL", downMs: number): Promise<number>;
  /** Stops the relay (waiting for it to exit), waits `downMs` and starts a new one. */
  restartRelay(downMs: number): Promise<void>;
  /** The web server's root on the connector's host (holds `big.bin` when asked). */
  webRoot: string;
  /** The relay's counters now. */
  relayCounters(): Promise<RelayCounters>;
  /** The direct address the agent's session switched to, or null if none within `timeoutMs`. */
  direct(timeoutMs: number): Promise<string | null>;
  /** Starts counting UDP packets between the two sites' public addresses on the internet host. */
  capture(): Promise<{ stop(): Promise<number> }>;
  /** `ztna status --json` of the agent or the connector, run on its host. */
  status(which: "agent" | "connector"): Promise<NodeStatus>;
}

/** The last `count` info, warning and error lines of agent and connector each, for failure messages. */
export function lastLogLines(lab: P2pLab, count = 15): string[] {
  return [lab.agent, lab.connector].flatMap((child) =>
    child.stderr.tail().filter((l) => /INF|WRN|ERR/.test(l)).slice(-count)
  );
}

/**
 * Session DATAGRAMs the relay forwarded between two snapshots, in the given
 * directions. A session the relay renamed in between (a resume gives it a new
 * ID and fresh counters) counts from zero, so nothing is lost or negative.
 */
export function relayedBetween(
  before: RelayCounters,
  after: RelayCounters,
  directions: ReadonlyArray<"agentToConnector" | "connectorToAgent">,
): number {
  const earlier = new Map(before.sessions.map((s) => [s.id, s]));
  return after.sessions.reduce((sum, s) => {
    const old = earlier.get(s.id);
    return sum + directions.reduce((n, d) => n + s[d] - (old?.[d] ?? 0), 0);
  }, 0);
}

/** The sites of a lab: the agent's and the connector's, or one LAN both are on. */
export type LabSites = { agent: SiteSpec; connector: SiteSpec } | { shared: SiteSpec };

/** Options of {@link withP2pLab}. */
export interface P2pLabOptions {
  /** Bytes of `big.bin` served by the web server (default none). */
  bigFile?: Uint8Array;
  /** Extra agent flags. */
  agentArgs?: string[];
  /** Runs once relay and connector are up, before the agent starts. */
  beforeAgent?: (lab: NatLab, agentSite: Site, connectorSite: Site) => Promise<void>;
}

/** Builds the lab, starts relay, web server, connector and agent, runs `body`, tears down. */
export async function withP2pLab(
  prefix: string,
  sites: LabSites,
  body: (lab: P2pLab) => Promise<void>,
  options: P2pLabOptions = {},
): Promise<void> {
  const shared = "shared" in sites;
  const specs = shared ? [{ ...sites.shared, hosts: 2 }] : [sites.agent, sites.connector];
  const lab = await createNatLab(prefix, specs);
  const org = await makeTestOrg(prefix);
  const webRoot = await Deno.makeTempDir({ prefix: "ztna-p2p-web-" });
  try {
    const agentSite = lab.sites[0];
    const connectorSite = shared ? lab.sites[0] : lab.sites[1];
    const agentHost = agentSite.hosts[0];
    const connectorHost = shared ? agentSite.hosts[1] : connectorSite.hosts[0];
    await Deno.writeTextFile(`${webRoot}/index.html`, "hello through ztna\n");
    if (options.bigFile) await Deno.writeFile(`${webRoot}/big.bin`, options.bigFile);
    const relayId = await org.issue("relay-1", "relay");
    const connectorId = await org.issue("conn-1", "connector", ["web"]);
    const agentId = await org.issue("alice", "agent");
    const { net } = lab;
    // STUN on the relay's port, its second address and a second port: nodes measure their NATs.
    const startRelay = async () => {
      const relay = net.spawnDeno(lab.relay, new URL("./relay_main.ts", import.meta.url), [
        lab.relayAddress,
        String(RELAY_PORT),
        relayId.certPath,
        relayId.keyPath,
        org.caPath,
        lab.relayAltAddress,
        String(RELAY_PORT + 1),
      ]);
      assert.equal(await relay.nextLine(), `READY ${RELAY_PORT}`);
      return relay;
    };
    const relay = await startRelay();
    const web = net.spawn(connectorHost, [
      ...["python3", "-u", "-m", "http.server", "--bind", "127.0.0.1"],
      ...["--directory", webRoot, "8080"],
    ]);
    assert.match(await web.nextLine(), /Serving HTTP/);
    const common = [
      ...["--relay", `${lab.relayAddress}:${RELAY_PORT}`, "--relay-name", RELAY_NAME],
      ...["--ca", org.caPath, "--log-level", "debug"],
    ];
    const startConnector = async () => {
      const connector = captured(net.spawn(
        connectorHost,
        denoCommand(MAIN, [
          ...["connector", "--service", "web", "--forward", "127.0.0.1:8080", "--allow", "alice"],
          ...["--cert", connectorId.certPath, "--key", connectorId.keyPath, ...common],
          ...["--admin-socket", `${webRoot}/connector.sock`],
        ]),
        { stderr: "capture" },
      ));
      await connector.nextLine(20_000);
      return connector;
    };
    const connector = await startConnector();
    await options.beforeAgent?.(lab, agentSite, connectorSite);
    const agent = captured(net.spawn(
      agentHost,
      denoCommand(MAIN, [
        ...["agent", "--tun", "ztna0", "--service", `web=${SERVICE_IP}`],
        ...["--cert", agentId.certPath, "--key", agentId.keyPath, ...common],
        ...["--admin-socket", `${webRoot}/agent.sock`],
        ...(options.agentArgs ?? []),
      ]),
      { stderr: "capture" },
    ));
    await agent.nextLine(20_000);
    const running: P2pLab = {
      lab,
      org,
      agentSite,
      connectorSite,
      agentHost,
      connectorHost,
      relay,
      connector,
      agent,
      webRoot,
      async restartConnector(signal, downMs) {
        if (signal === "SIGKILL") running.connector.process.kill("SIGKILL");
        await running.connector.stop();
        await new Promise((resolve) => setTimeout(resolve, downMs));
        running.connector = await startConnector();
        return Date.now();
      },
      async restartRelay(downMs) {
        await running.relay.stop();
        await new Promise((resolve) => setTimeout(resolve, downMs));
        running.relay = await startRelay();
      },
      async relayCounters() {
        running.relay.process.kill("SIGUSR1");
        return JSON.parse(await running.relay.nextLine(5_000)) as RelayCounters;
      },
      async direct(timeoutMs) {
        try {
          const line = await agent.stderr.waitFor(/session web: direct /, timeoutMs);
          return /session web: direct (\S+)/.exec(line)![1];
        } catch {
          return null;
        }
      },
      async status(which) {
        const host = which === "agent" ? agentHost : connectorHost;
        const result = await net.exec(
          host,
          denoCommand(MAIN, ["status", "--socket", `${webRoot}/${which}.sock`, "--json"]),
        );
        assert.equal(result.code, 0, `ztna status: ${result.stderr}`);
        return JSON.parse(result.stdout) as NodeStatus;
      },
      async capture() {
        const file = `${webRoot}/capture.pcap`;
        const a = agentSite.publicAddress, b = connectorSite.publicAddress;
        const tcpdump = net.spawn(lab.internet, [
          ...["tcpdump", "-Z", "root", "-i", "any", "-nn", "-U", "--immediate-mode", "-w", file],
          // Between the two sites only: not the relay's traffic, nor the STUN of NAT checks.
          `udp and host ${a} and host ${b} and not host ${lab.relayAddress} and not host ${lab.relayAltAddress}`,
        ], { stderr: "capture" });
        await tcpdump.stderr!.waitFor(/listening on/, 5_000);
        return {
          async stop() {
            await tcpdump.stop();
            const read = await net.exec(lab.internet, ["tcpdump", "-nn", "-r", file]);
            return read.stdout.split("\n").filter((line) => line.includes(" UDP")).length;
          },
        };
      },
    };
    await body(running);
  } finally {
    await lab.net.destroy();
    await org.cleanup();
    await Deno.remove(webRoot, { recursive: true });
  }
}

function captured(child: Child): Child & { stderr: LineLog } {
  if (!child.stderr) throw new Error("stderr was not captured");
  return child as Child & { stderr: LineLog };
}
