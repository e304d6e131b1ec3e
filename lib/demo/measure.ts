/** The demo's measurements from the agent's namespace: ping the service IP, fetch the page. */
import type { NatTopology } from "../netns/mod.ts";
import { parsePing, type PingSummary } from "./ping.ts";
import type { HttpResult } from "./report.ts";
import { DEMO, DEMO_URL } from "./settings.ts";

const FETCH_MAIN = new URL("./fetch_main.ts", import.meta.url);

/** Pings the service IP from the agent; throws unless every echo came back. */
export async function pingService(topology: NatTopology): Promise<PingSummary> {
  const { net, agent } = topology;
  const result = await net.exec(agent, [
    ...["ping", "-n", "-c", String(DEMO.pings), "-i", "0.2", "-W", "2", DEMO.serviceIp],
  ]);
  const summary = parsePing(result.stdout + result.stderr);
  if (result.code !== 0 || summary.received < summary.sent) {
    throw new Error(
      `ping ${DEMO.serviceIp} through the tunnel from the agent: ` +
        `${summary.received}/${summary.sent} replies`,
    );
  }
  return summary;
}

/** Fetches the demo URL from the agent; throws unless it is 200 with this run's page. */
export async function fetchPage(topology: NatTopology, token: string): Promise<HttpResult> {
  const { net, agent } = topology;
  const result = await net.execDeno(agent, FETCH_MAIN, [DEMO_URL, String(DEMO.fetchTimeoutMs)], {
    // Nothing in the namespace can reach a proxy the operator's environment names.
    env: { NO_PROXY: "*", no_proxy: "*" },
    timeoutMs: DEMO.fetchTimeoutMs + 20_000,
  });
  if (result.code !== 0) {
    const reason = result.stderr.trim().split("\n").at(-1) ?? `exit ${result.code}`;
    throw new Error(`HTTP through the tunnel failed, though ping got through: ${reason}`);
  }
  const answer = JSON.parse(result.stdout) as HttpResult & { body: string };
  if (answer.status !== 200 || !answer.body.includes(token)) {
    throw new Error(
      `HTTP through the tunnel: GET ${DEMO_URL} answered ${answer.status} ` +
        `with ${answer.bytes} bytes that are not the demo page`,
    );
  }
  const ms = Math.round(answer.ms * 10) / 10;
  return { url: DEMO_URL, status: answer.status, bytes: answer.bytes, ms };
}
