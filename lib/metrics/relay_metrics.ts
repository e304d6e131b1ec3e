/**
 * The relay's Prometheus metrics, read from its counters at each scrape:
 * nodes by role, sessions, what it forwarded and dropped, refusals by code,
 * its QUIC endpoint's and STUN responder's counters. Labels are roles, reasons,
 * error codes and service names (bounded by what certificates grant), never
 * session IDs, node names or addresses.
 */
import type { Registry } from "prom-client";
import type { Relay } from "../relay/relay.ts";
import type { StunServer } from "../relay/stun_server.ts";
import { byLabel, readCounter, readGauge, single } from "./collectors.ts";
import { registerEndpointMetrics } from "./endpoint_metrics.ts";

/** Registers the relay's collectors in `registry`. */
export function registerRelayMetrics(
  registry: Registry,
  relay: Relay,
  stun: StunServer | undefined,
): void {
  readGauge(registry, {
    name: "ztna_relay_nodes",
    help: "Nodes connected to the relay (hello done), by role.",
    labelNames: ["role"],
    read: () => byLabel("role", relay.roster().roles),
  });
  readGauge(registry, {
    name: "ztna_relay_service_connectors",
    help: "Connectors publishing each service.",
    labelNames: ["service"],
    read: () => byLabel("service", relay.snapshot().services),
  });
  readGauge(registry, {
    name: "ztna_relay_sessions",
    help: "Live sessions at the relay (pending or open).",
    read: () => single(relay.snapshot().sessions),
  });
  const stat = (name: string, help: string, read: () => number) =>
    readCounter(registry, { name, help, read: () => single(read()) });
  stat(
    "ztna_relay_sessions_opened_total",
    "Sessions connectors accepted.",
    () => relay.stats.sessionsOpened,
  );
  stat(
    "ztna_relay_admission_timeouts_total",
    "Sessions a connector did not answer in time.",
    () => relay.stats.admissionTimeouts,
  );
  stat(
    "ztna_relay_forwarded_packets_total",
    "Session DATAGRAMs forwarded between agents and connectors.",
    () => relay.stats.datagramsForwarded,
  );
  stat(
    "ztna_relay_forwarded_bytes_total",
    "Bytes of the session DATAGRAMs forwarded.",
    () => relay.stats.bytesForwarded,
  );
  stat(
    "ztna_relay_node_connections_total",
    "Nodes admitted (hello accepted) since the start.",
    () => relay.stats.nodesConnected,
  );
  readCounter(registry, {
    name: "ztna_relay_dropped_packets_total",
    help: "Session DATAGRAMs the relay dropped, by reason.",
    labelNames: ["reason"],
    read: () => {
      const s = relay.stats;
      return byLabel("reason", {
        no_session: s.droppedNoSession,
        rate_limited: s.droppedRateLimited,
        peer_queue_full: s.droppedPeerQueueFull,
      });
    },
  });
  readCounter(registry, {
    name: "ztna_relay_refusals_total",
    help: "Requests and connections the relay refused, by error code.",
    labelNames: ["code"],
    read: () => byLabel("code", relay.refusals),
  });
  readCounter(registry, {
    name: "ztna_relay_nodes_refused_total",
    help: "Node connections refused or closed by the relay, by reason.",
    labelNames: ["reason"],
    read: () => {
      const s = relay.stats;
      return byLabel("reason", {
        no_node_role: s.nodesRefused,
        relay_full: s.nodesRefusedFull,
        replaced: s.nodesReplaced,
        not_reading: s.nodesNotReading,
      });
    },
  });
  readCounter(registry, {
    name: "ztna_relay_sessions_refused_total",
    help: "Session requests refused, by whom: the connector, or the relay's session bounds.",
    labelNames: ["by"],
    read: () =>
      byLabel("by", {
        connector: relay.stats.sessionsRefused,
        relay_limit: relay.stats.sessionLimitHits,
      }),
  });
  registerEndpointMetrics(registry, () => relay.endpoint.stats);
  if (stun) registerStunMetrics(registry, stun);
}

/** The STUN responder's counters. */
function registerStunMetrics(registry: Registry, stun: StunServer): void {
  readCounter(registry, {
    name: "ztna_stun_requests_total",
    help: "STUN datagrams received by the relay's STUN responder.",
    read: () => single(stun.stats.received),
  });
  readCounter(registry, {
    name: "ztna_stun_answers_total",
    help: "STUN answers sent, by kind.",
    labelNames: ["kind"],
    read: () => byLabel("kind", { success: stun.stats.answered, error: stun.stats.errorsAnswered }),
  });
  readCounter(registry, {
    name: "ztna_stun_dropped_total",
    help: "STUN datagrams dropped unanswered, by reason.",
    labelNames: ["reason"],
    read: () => {
      const s = stun.stats;
      return byLabel("reason", {
        malformed: s.droppedMalformed,
        not_request: s.droppedNotRequest,
        unknown_method: s.droppedUnknownMethod,
        oversize: s.droppedOversize,
        source_limited: s.droppedSourceLimited,
        global_limited: s.droppedGlobalLimited,
        send_failed: s.droppedSendFailed,
      });
    },
  });
}
