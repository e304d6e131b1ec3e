/**
 * Metrics of the connector's userspace TCP (the rootless mode's stacks, one per session),
 * totals since start read from its status at each scrape: what operators look at when a
 * transfer through a lossy path is slow — retransmissions, timeouts, out-of-order arrivals.
 */
import type { Registry } from "prom-client";
import type { TcpCounters } from "../tcp/counters.ts";
import { readCounter, readGauge, single } from "./collectors.ts";

/** The stacks' counters: metric name, help, and the `TcpCounters` field it reads. */
const TCP_COUNTERS: [string, string, keyof TcpCounters][] = [
  [
    "ztna_connector_tcp_accepted_total",
    "TCP connections from agents whose handshake completed.",
    "connectionsAccepted",
  ],
  [
    "ztna_connector_tcp_resets_total",
    "TCP connections ended by a RST (received, or sent by an abort or a timeout).",
    "connectionsReset",
  ],
  [
    "ztna_connector_tcp_timed_out_total",
    "TCP connections aborted because retransmissions or probes went unanswered.",
    "connectionsTimedOut",
  ],
  ["ztna_connector_tcp_segments_received_total", "Valid TCP segments received.", "segmentsIn"],
  ["ztna_connector_tcp_segments_sent_total", "TCP segments sent.", "segmentsOut"],
  [
    "ztna_connector_tcp_retransmissions_total",
    "TCP segments sent again (timeouts, loss recovery, SYN-ACKs).",
    "retransmissions",
  ],
  [
    "ztna_connector_tcp_retransmission_timeouts_total",
    "TCP retransmission timer expirations.",
    "retransmissionTimeouts",
  ],
  [
    "ztna_connector_tcp_loss_recoveries_total",
    "TCP loss recoveries entered (SACK, RACK or three duplicate ACKs showed a loss).",
    "fastRetransmits",
  ],
  [
    "ztna_connector_tcp_spurious_retransmissions_total",
    "TCP retransmissions found needless (reordering taken for loss).",
    "spuriousRetransmissions",
  ],
  [
    "ztna_connector_tcp_out_of_order_total",
    "TCP data segments received ahead of a gap.",
    "outOfOrder",
  ],
  [
    "ztna_connector_tcp_out_of_order_dropped_total",
    "TCP segments ahead of a gap dropped because the out-of-order buffer was full.",
    "outOfOrderDropped",
  ],
  [
    "ztna_connector_tcp_syns_dropped_total",
    "SYNs dropped: backlog or connection limit full, or refused.",
    "synsDropped",
  ],
];

/** Registers the userspace TCP's collectors; `tcp` reads the summed counters now. */
export function registerTcpMetrics(registry: Registry, tcp: () => TcpCounters): void {
  for (const [name, help, key] of TCP_COUNTERS) {
    readCounter(registry, { name, help, read: () => single(tcp()[key]) });
  }
  readGauge(registry, {
    name: "ztna_connector_tcp_established",
    help: "TCP connections past the handshake and not yet closed.",
    read: () => single(tcp().connectionsActive),
  });
}
