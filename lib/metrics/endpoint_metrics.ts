/** A QUIC endpoint's counters (lib/quic/endpoint.ts EndpointStats) as Prometheus metrics. */
import type { Registry } from "prom-client";
import type { EndpointStats } from "../quic/endpoint.ts";
import { byLabel, readCounter, single } from "./collectors.ts";

/** Registers `ztna_quic_*` collectors reading `stats()` at each scrape. */
export function registerEndpointMetrics(registry: Registry, stats: () => EndpointStats): void {
  readCounter(registry, {
    name: "ztna_quic_packets_routed_total",
    help: "Received QUIC packets handed to a connection.",
    read: () => single(stats().routedToConnections),
  });
  readCounter(registry, {
    name: "ztna_quic_packets_dropped_total",
    help: "Received datagrams dropped by the QUIC endpoint, by reason.",
    labelNames: ["reason"],
    read: () => {
      const s = stats();
      return byLabel("reason", {
        unknown_connection: s.unknownConnectionDropped,
        malformed: s.malformedDropped,
        non_quic_unclaimed: s.rawUnclaimed,
        invalid_token: s.invalidTokens,
        non_virtual: s.nonVirtualDropped,
        duplicate_virtual: s.duplicateVirtualDropped,
        accept_failed: s.acceptFailures,
      });
    },
  });
  readCounter(registry, {
    name: "ztna_quic_retries_total",
    help: "Token-less Initials answered with a stateless retry.",
    read: () => single(stats().retries),
  });
  readCounter(registry, {
    name: "ztna_quic_handshakes_refused_total",
    help: "Initials dropped because they would start a handshake past the handshake bounds.",
    read: () => single(stats().handshakesRefused),
  });
  readCounter(registry, {
    name: "ztna_quic_handshakes_timed_out_total",
    help: "Server handshakes not complete within the handshake deadline, dropped.",
    read: () => single(stats().handshakesTimedOut),
  });
  readCounter(registry, {
    name: "ztna_quic_client_certificate_missing_total",
    help: "Handshakes refused because the client sent no certificate.",
    read: () => single(stats().clientCertificateMissing),
  });
  readCounter(registry, {
    name: "ztna_quic_connections_accepted_total",
    help: "Server connections whose handshake completed.",
    read: () => single(stats().connectionsAccepted),
  });
}
