/**
 * Starting the demo's processes in their namespaces: the relay, the web
 * server, the connector and the agent (`ztna` run from source), each waited
 * for until it says it is up. Their stderr is captured; a start failure names
 * the process and quotes its last log line.
 */
import { errorMessage } from "../cli/errors.ts";
import {
  type Child,
  denoCommand,
  type Host,
  type LineLog,
  type NatTopology,
} from "../netns/mod.ts";
import type { DemoOrg } from "./org.ts";
import { DEMO } from "./settings.ts";

/** This checkout's `ztna` entry point. */
export const MAIN = new URL("../../main.ts", import.meta.url);
const WEB_MAIN = new URL("./web_main.ts", import.meta.url);

/** Starts the relay on the public network; resolves once it logs that it listens. */
export async function startRelay(topology: NatTopology, org: DemoOrg): Promise<void> {
  const child = spawnCaptured(
    topology,
    topology.relay,
    denoCommand(MAIN, [
      ...["relay", "--listen", `0.0.0.0:${DEMO.relayPort}`],
      ...["--cert", org.relay.certPath, "--key", org.relay.keyPath, "--ca", org.caPath],
    ]),
  );
  await awaitStart("the relay", child, child.stderr.waitFor(/listening on/, DEMO.startTimeoutMs));
}

/** Starts the web server on the connector's loopback; resolves once it listens. */
export async function startWebServer(topology: NatTopology, token: string): Promise<void> {
  const child = spawnCaptured(
    topology,
    topology.connector,
    denoCommand(WEB_MAIN, [DEMO.web.host, String(DEMO.web.port), token]),
  );
  const ready = await awaitStart("the web server", child, child.nextLine(DEMO.startTimeoutMs));
  if (ready !== "READY") throw new Error(`the web server said "${ready}" instead of READY`);
}

/**
 * Starts the connector publishing the web server; resolves once it is
 * registered, with the address the relay observed for it (QAD).
 */
export async function startConnector(topology: NatTopology, org: DemoOrg): Promise<string> {
  const { service, agent } = DEMO.names;
  const child = spawnCaptured(
    topology,
    topology.connector,
    denoCommand(MAIN, [
      ...["connector", "--service", service, "--forward", `${DEMO.web.host}:${DEMO.web.port}`],
      ...["--allow", agent, "--cert", org.connector.certPath, "--key", org.connector.keyPath],
      ...relayFlags(topology, org),
      ...adminSocket(org.connector.certPath),
    ]),
  );
  const line = await awaitStart("the connector", child, child.nextLine(DEMO.startTimeoutMs));
  return observedAddress("the connector", line);
}

/** The agent once its session is up. */
export interface StartedAgent {
  /** The address the relay observed for it (QAD). */
  observed: string;
  /** Resolves with the direct peer address once the session went direct, or null after `ms`. */
  direct(ms: number): Promise<string | null>;
}

/**
 * Starts the agent with its TUN device; resolves once its session to the
 * service is up (through the relay).
 */
export async function startAgent(topology: NatTopology, org: DemoOrg): Promise<StartedAgent> {
  const child = spawnCaptured(
    topology,
    topology.agent,
    denoCommand(MAIN, [
      ...["agent", "--tun", DEMO.tun, "--service", `${DEMO.names.service}=${DEMO.serviceIp}`],
      ...["--cert", org.agent.certPath, "--key", org.agent.keyPath],
      ...relayFlags(topology, org),
      ...adminSocket(org.agent.certPath),
    ]),
  );
  const line = await awaitStart("the agent", child, child.nextLine(DEMO.startTimeoutMs));
  return {
    observed: observedAddress("the agent", line),
    direct: (ms) =>
      child.stderr.waitFor(/session \S+: direct (\S+)/, ms).then(
        (found) => /session \S+: direct (\S+)/.exec(found)![1],
        () => null,
      ),
  };
}

/** Starts `argv` in `host` with its stderr captured. */
function spawnCaptured(
  topology: NatTopology,
  host: Host,
  argv: string[],
): Child & { stderr: LineLog } {
  const child = topology.net.spawn(host, argv, { stderr: "capture" });
  const { stderr } = child;
  if (stderr === null) throw new Error(`stderr of ${argv.join(" ")} was not captured`);
  return { ...child, stderr };
}

/** An admin socket beside a node's certificate (the demo's temporary folder), not the host's. */
function adminSocket(certPath: string): string[] {
  return ["--admin-socket", certPath.replace(/\.crt$/, ".sock")];
}

function relayFlags(topology: NatTopology, org: DemoOrg): string[] {
  return [
    ...["--relay", `${topology.addresses.relay}:${DEMO.relayPort}`],
    ...["--relay-name", DEMO.names.relayHost, "--ca", org.caPath],
  ];
}

/** The QAD address at the end of a node's "... relay sees it at ADDR" line. */
function observedAddress(what: string, line: string): string {
  const observed = /relay sees it at (\S+)$/.exec(line)?.[1];
  if (!observed) throw new Error(`${what} printed an unexpected first line: "${line}"`);
  return observed;
}

/** Waits for `up`; a failure names the process and quotes its last log line. */
async function awaitStart<T>(what: string, child: Child, up: Promise<T>): Promise<T> {
  try {
    return await up;
  } catch (error) {
    // A process that died has closed its stderr; give the last lines a moment to arrive.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      child.stderr?.ended,
      new Promise((resolve) => timer = setTimeout(resolve, 500)),
    ]);
    clearTimeout(timer);
    const last = child.stderr?.tail().at(-1);
    throw new Error(
      `${what} did not come up: ${errorMessage(error)}${
        last ? `; its last log line: ${last}` : ""
      }`,
    );
  }
}
