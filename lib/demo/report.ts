/** What `ztna demo` found, and how it is printed (text for people, JSON for machines). */
import type { PingSummary } from "./ping.ts";

/** One stop on the way from the agent to the web server. */
export interface PathHop {
  hop: "agent" | "agent-nat" | "relay" | "connector-nat" | "connector" | "web";
  /** An address, or for a NAT the public address and port the relay observed (QAD). */
  address: string;
}

/** The HTTP request through the tunnel. */
export interface HttpResult {
  url: string;
  status: number;
  /** Body size. */
  bytes: number;
  /** From the request to the last body byte, in milliseconds. */
  ms: number;
}

/** The demo's findings. */
export interface DemoReport {
  /** Namespace prefix of the run: every namespace was named `<topology>-<host>`. */
  topology: string;
  service: { name: string; ip: string };
  /** The path the page and the pings took: direct if the session got there, else the relay's. */
  path: PathHop[];
  /** The session's path through the relay, where every session starts. */
  relayPath: PathHop[];
  /** When the session went direct, and where to (the connector's NAT as the agent reached it). */
  direct: { address: string; afterMs: number } | null;
  /** From the agent's start to its session being up through the relay, in ms. */
  relayAfterMs: number;
  http: HttpResult;
  ping: PingSummary;
  /** From the start to the agent's session being up (PKI, namespaces, four processes), in ms. */
  setupMs: number;
}

const HOP_LABELS: Record<PathHop["hop"], string> = {
  agent: "agent",
  "agent-nat": "NAT",
  relay: "relay",
  "connector-nat": "NAT",
  connector: "connector",
  web: "web",
};

/** The path as one line: `agent 10.200.1.2 → NAT 198.18.2.2:40000 → relay ...`. */
export function formatPath(path: PathHop[]): string {
  return path.map((hop) => `${HOP_LABELS[hop.hop]} ${hop.address}`).join(" → ");
}

/** The human-readable report. */
export function formatReport(report: DemoReport): string {
  const { http, ping } = report;
  const rtt = ping.minMs === null
    ? "no replies"
    : `RTT min/avg/max ${ping.minMs}/${ping.avgMs}/${ping.maxMs} ms`;
  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const relay = report.relayPath.find((hop) => hop.hop === "relay")!.address;
  const how = report.direct
    ? `direct, peer to peer (hole punched; the connector's NAT at ${report.direct.address});` +
      ` it started via the relay ${relay}`
    : `via the relay ${relay}: no direct path was found`;
  const timing = `agent start → session up via the relay ${seconds(report.relayAfterMs)}` +
    (report.direct ? ` → direct ${seconds(report.direct.afterMs)}` : "");
  return [
    `ztna demo: fetched ${http.url} (service ${report.service.name}) through the tunnel`,
    `  path    ${formatPath(report.path)}`,
    `          ${how}`,
    "          (NAT addresses as the relay observed them)",
    `  timing  ${timing}`,
    `  http    ${http.status}, ${http.bytes} bytes in ${http.ms.toFixed(1)} ms`,
    `  ping    ${ping.received}/${ping.sent} replies, ${rtt}`,
    `  setup   ${seconds(report.setupMs)} to bring up the relay, web server, ` +
    `connector and agent (namespaces ${report.topology}-*)`,
  ].join("\n");
}

/** The report as pretty JSON. */
export function reportJson(report: DemoReport): string {
  return JSON.stringify({ ...report, pathText: formatPath(report.path) }, null, 2);
}
