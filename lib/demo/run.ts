/**
 * `ztna demo` end to end: a throwaway organisation, the two-NAT namespace
 * topology, the relay, a web server, the connector and the agent, then a ping
 * and a page fetched through the tunnel. Whatever happens (a failure, an
 * interruption) the topology is destroyed and the temporary files removed
 * before this returns or throws.
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../cli/errors.ts";
import { createNatTopology, type NatTopology } from "../netns/mod.ts";
import { interruptibleSleep, interruption, throwIfInterrupted } from "./interrupt.ts";
import { fetchPage, pingService } from "./measure.ts";
import { startAgent, startConnector, startRelay, startWebServer } from "./nodes.ts";
import { createDemoOrg } from "./org.ts";
import { newPageToken } from "./page.ts";
import type { DemoReport, PathHop } from "./report.ts";
import { DEMO } from "./settings.ts";

const log = getLogger(["ztna", "demo"]);

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** How long everything stays up after the report (0: clean up at once). */
  keepGoingMs: number;
  /** Fires to stop the demo early (it still cleans up, then throws DemoInterrupted). */
  signal: AbortSignal;
  /** Receives the report while the tunnel is still up, before the keep-going wait. */
  onReport(report: DemoReport, topology: NatTopology): void;
}

/** Runs the demo; resolves with its report once everything is cleaned up. */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { signal } = options;
  const started = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "ztna-demo-" });
  let topology: NatTopology | undefined;
  // Killing the processes ends whatever step is waiting on them.
  const onAbort = () => void topology?.net.destroy().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  let failure: unknown;
  try {
    log.info("creating a throwaway organisation in {dir}", { dir });
    const org = await createDemoOrg(dir, DEMO.names);
    throwIfInterrupted(signal);
    // NATs that drop unsolicited packets to themselves, as home routers do: a direct path exists.
    topology = await createNatTopology(DEMO.prefix, { homeRouters: true });
    log.info("namespaces up (prefix {id}): relay, two NATs, agent, connector", {
      id: topology.net.id,
    });
    throwIfInterrupted(signal);
    const token = newPageToken();
    await startRelay(topology, org);
    log.info("relay listening on {address}", {
      address: `${topology.addresses.relay}:${DEMO.relayPort}`,
    });
    await startWebServer(topology, token);
    const connectorSeenAt = await startConnector(topology, org);
    log.info("connector up; the relay sees it at {observed}", { observed: connectorSeenAt });
    const agentStarted = performance.now();
    const agent = await startAgent(topology, org);
    const relayAfterMs = Math.round(performance.now() - agentStarted);
    log.info("agent up; the relay sees it at {observed}", { observed: agent.observed });
    const directTo = await agent.direct(DEMO.directTimeoutMs);
    const directAfterMs = Math.round(performance.now() - agentStarted);
    if (directTo) log.info("the session went direct to {address}", { address: directTo });
    else log.warn("the session stayed on the relay");
    const setupMs = performance.now() - started;
    const ping = await pingService(topology);
    const http = await fetchPage(topology, token);
    const relayPath = demoPath(topology, agent.observed, connectorSeenAt);
    const report: DemoReport = {
      topology: topology.net.id,
      service: { name: DEMO.names.service, ip: DEMO.serviceIp },
      path: directTo ? relayPath.filter((hop) => hop.hop !== "relay") : relayPath,
      relayPath,
      direct: directTo ? { address: directTo, afterMs: directAfterMs } : null,
      relayAfterMs,
      http,
      ping,
      setupMs: Math.round(setupMs),
    };
    options.onReport(report, topology);
    if (options.keepGoingMs > 0) await interruptibleSleep(options.keepGoingMs, signal);
    return report;
  } catch (error) {
    failure = signal.aborted ? interruption(signal) : error;
    throw failure;
  } finally {
    signal.removeEventListener("abort", onAbort);
    await cleanUp(topology, dir, failure);
  }
}

/** The hops from the agent to the web server, NATs as the relay observed them. */
function demoPath(topology: NatTopology, agentSeenAt: string, connectorSeenAt: string): PathHop[] {
  const { addresses } = topology;
  return [
    { hop: "agent", address: addresses.agent },
    { hop: "agent-nat", address: agentSeenAt },
    { hop: "relay", address: `${addresses.relay}:${DEMO.relayPort}` },
    { hop: "connector-nat", address: connectorSeenAt },
    { hop: "connector", address: addresses.connector },
    { hop: "web", address: `${DEMO.web.host}:${DEMO.web.port}` },
  ];
}

/**
 * Destroys the topology (processes, links, namespaces, in that order) and
 * removes the temporary files. A cleanup failure is thrown, joined to the
 * run's own failure if there was one.
 */
async function cleanUp(
  topology: NatTopology | undefined,
  dir: string,
  failure: unknown,
): Promise<void> {
  const problems: string[] = [];
  try {
    await topology?.net.destroy();
  } catch (error) {
    problems.push(errorMessage(error));
  }
  try {
    await Deno.remove(dir, { recursive: true });
  } catch (error) {
    problems.push(`removing ${dir}: ${errorMessage(error)}`);
  }
  if (problems.length === 0) {
    log.info("cleaned up: namespaces and temporary files removed");
    return;
  }
  const cleanup = `cleaning up failed: ${problems.join("; ")}`;
  if (failure === undefined) throw new Error(cleanup);
  throw new Error(`${errorMessage(failure)}; and ${cleanup}`, { cause: failure });
}
