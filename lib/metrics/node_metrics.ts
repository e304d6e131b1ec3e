/**
 * An agent's or connector's Prometheus metrics, read from its status at each
 * scrape: the relay link, each session's RTT, bytes and packets per path kind
 * and its active path, the connector's limits and userspace TCP (tcp_metrics.ts),
 * the TUN device and the kernel mode (tun_metrics.ts), and the node's QUIC endpoint.
 * Sessions are labelled by service and peer (names certificates grant); several
 * sessions of one agent to one service add up into one series. Path kinds are
 * `relay` and `direct`, never addresses or ports.
 */
import type { Registry } from "prom-client";
import type { NodeStatus } from "../admin/node_status.ts";
import type { TerminatorTotals } from "../connector/connector.ts";
import type { EndpointStats } from "../quic/endpoint.ts";
import { byLabel, readCounter, readGauge, type Sample, single } from "./collectors.ts";
import { registerEndpointMetrics } from "./endpoint_metrics.ts";
import { registerKernelMetrics, registerTunMetrics } from "./tun_metrics.ts";
import { registerTcpMetrics } from "./tcp_metrics.ts";
import type { KernelForwarderStats } from "../connector/kernel/kernel_forwarder.ts";

/** What node metrics read: the node's status (a connector's has its terminator totals). */
export interface NodeMetricsSource {
  status(): NodeStatus & { terminator?: TerminatorTotals; kernel?: KernelForwarderStats };
  endpointStats(): EndpointStats;
}

type SessionLabel = "service" | "peer";
type PathLabel = SessionLabel | "path" | "direction";

/** Adds `value` to the sample with these labels (one series per label set). */
function add<L extends string>(
  samples: Map<string, Sample<L>>,
  labels: Record<L, string>,
  value: number,
  combine = (a: number, b: number) => a + b,
): void {
  const key = JSON.stringify(labels);
  const sample = samples.get(key);
  if (sample) sample.value = combine(sample.value, value);
  else samples.set(key, { labels, value });
}

/** A running agent or connector: its status and its node's endpoint. */
export interface NodeDaemon {
  readonly node: { readonly endpoint: { readonly stats: EndpointStats } };
  status(): NodeStatus & { terminator?: TerminatorTotals; kernel?: KernelForwarderStats };
}

/** The `collectors` a daemon's metrics registry gets for a running agent or connector. */
export function nodeDaemonCollectors(daemon: NodeDaemon): (registry: Registry) => void {
  return (registry) =>
    registerNodeMetrics(registry, {
      status: () => daemon.status(),
      endpointStats: () => daemon.node.endpoint.stats,
    });
}

/** Registers the node's collectors in `registry`. */
export function registerNodeMetrics(registry: Registry, source: NodeMetricsSource): void {
  const relay = () => source.status().relay;
  readGauge(registry, {
    name: "ztna_relay_link_up",
    help: "1 while the node is connected to its relay.",
    read: () => single(relay().connected ? 1 : 0),
  });
  readGauge(registry, {
    name: "ztna_relay_link_rtt_seconds",
    help: "Round-trip time of the relay connection (absent while not connected).",
    read: () => {
      const rtt = relay().rttMs;
      return rtt === null ? [] : single(rtt / 1000);
    },
  });
  readCounter(registry, {
    name: "ztna_relay_reconnects_total",
    help: "Times the node reconnected to its relay.",
    read: () => single(relay().reconnects),
  });
  readGauge(registry, {
    name: "ztna_sessions",
    help: "Live end-to-end sessions, by service.",
    labelNames: ["service"],
    read: () => {
      const samples = new Map<string, Sample<"service">>();
      for (const s of source.status().sessions) add(samples, { service: s.service }, 1);
      return [...samples.values()];
    },
  });
  readGauge(registry, {
    name: "ztna_session_rtt_seconds",
    help: "Round-trip time of a session's active path (the highest of a peer's sessions).",
    labelNames: ["service", "peer"],
    read: () => {
      const samples = new Map<string, Sample<SessionLabel>>();
      for (const s of source.status().sessions) {
        if (s.rttMs === undefined) continue;
        add(samples, { service: s.service, peer: s.peer }, s.rttMs / 1000, Math.max);
      }
      return [...samples.values()];
    },
  });
  readGauge(registry, {
    name: "ztna_session_path",
    help: "Sessions on each path kind (relay or direct): 1 for a session's active one.",
    labelNames: ["service", "peer", "kind"],
    read: () => {
      const samples = new Map<string, Sample<SessionLabel | "kind">>();
      for (const s of source.status().sessions) {
        const direct = s.path !== "relay";
        add(samples, { service: s.service, peer: s.peer, kind: "relay" }, direct ? 0 : 1);
        add(samples, { service: s.service, peer: s.peer, kind: "direct" }, direct ? 1 : 0);
      }
      return [...samples.values()];
    },
  });
  const perPath = (bytes: boolean) => () => {
    const samples = new Map<string, Sample<PathLabel>>();
    for (const s of source.status().sessions) {
      for (const p of s.paths) {
        const labels = { service: s.service, peer: s.peer, path: kind(p.path) };
        const sent = bytes ? p.bytesSent : p.packetsSent;
        const received = bytes ? p.bytesReceived : p.packetsReceived;
        add(samples, { ...labels, direction: "sent" }, sent);
        add(samples, { ...labels, direction: "received" }, received);
      }
    }
    return [...samples.values()];
  };
  readCounter(registry, {
    name: "ztna_session_bytes_total",
    help: "Bytes of live sessions' QUIC packets, by path kind and direction.",
    labelNames: ["service", "peer", "path", "direction"],
    read: perPath(true),
  });
  readCounter(registry, {
    name: "ztna_session_packets_total",
    help: "Live sessions' QUIC packets, by path kind and direction.",
    labelNames: ["service", "peer", "path", "direction"],
    read: perPath(false),
  });
  const at = source.status();
  if (at.terminator) {
    registerConnectorMetrics(registry, () => source.status());
    if (!at.kernel) registerTcpMetrics(registry, () => source.status().terminator!.tcp);
  }
  if (at.tun) registerTunMetrics(registry, () => source.status().tun);
  if (at.kernel) registerKernelMetrics(registry, () => source.status().kernel);
  registerEndpointMetrics(registry, () => source.endpointStats());
}

/** `relay` for the relay path, `direct` for any other. */
function kind(path: string): "relay" | "direct" {
  return path === "relay" ? "relay" : "direct";
}

/** A connector's limits: UDP flows, TCP connections and buffer memory, refusals. */
function registerConnectorMetrics(
  registry: Registry,
  status: () => { terminator?: TerminatorTotals },
): void {
  const totals = () => status().terminator!;
  readGauge(registry, {
    name: "ztna_connector_udp_flows",
    help: "UDP flows (a socket each) open.",
    read: () => single(totals().udpFlows),
  });
  readGauge(registry, {
    name: "ztna_connector_tcp_connections",
    help: "TCP connections tracked (every state).",
    read: () => single(totals().tcpConnections),
  });
  readGauge(registry, {
    name: "ztna_connector_tcp_buffer_bytes",
    help: "Bytes of the TCP buffer budget reserved (receive windows and unread data).",
    read: () => single(totals().tcpBufferInUse),
  });
  readGauge(registry, {
    name: "ztna_connector_tcp_buffer_budget_bytes",
    help: "The TCP buffer budget.",
    read: () => single(totals().tcpBufferBudget),
  });
  readCounter(registry, {
    name: "ztna_connector_refused_total",
    help: "UDP flows and TCP connections refused, by reason.",
    labelNames: ["reason"],
    read: () => {
      const t = totals();
      return byLabel("reason", {
        udp_session_limit: t.udpRefusedSession,
        udp_process_limit: t.udpRefusedProcess,
        tcp_session_limit: t.tcpRefusedSession,
        tcp_process_limit: t.tcpRefusedProcess,
        tcp_buffer: t.tcpRefusedBuffer,
        fd_exhausted: t.fdExhausted,
        udp_open_failed: t.udpOpenFailed,
        tcp_connect_failed: t.tcpConnectFailed,
      });
    },
  });
  readCounter(registry, {
    name: "ztna_connector_packets_total",
    help: "IP packets from agents at the connector's terminators (live sessions).",
    read: () => single(totals().packetsIn),
  });
}
