/**
 * Metrics of a node's TUN device (the agent's, or the connector's in kernel
 * mode) and of the connector's kernel mode, read from its status at each
 * scrape.
 */
import type { Registry } from "prom-client";
import type { TunStatus } from "../admin/node_status.ts";
import type { TunStats } from "../tun/mod.ts";
import type { KernelForwarderStats } from "../connector/kernel/kernel_forwarder.ts";
import { byLabel, readCounter, readGauge, single } from "./collectors.ts";

/** The TUN's unlabelled counters: metric name, help, and the `TunStats` field it reads. */
const TUN_COUNTERS: [string, string, keyof TunStats][] = [
  [
    "ztna_tun_segments_split_total",
    "Packets the super-packets read were split into.",
    "segmentsSplit",
  ],
  [
    "ztna_tun_checksums_completed_total",
    "Plain packets read whose partial checksum (checksum offload) was completed.",
    "checksumsCompleted",
  ],
  [
    "ztna_tun_reads_dropped_total",
    "Reads dropped: a super-packet that could not be split, or longer than the MTU.",
    "readsDropped",
  ],
  ["ztna_tun_packets_written_total", "Packets written to the TUN device.", "packetsWritten"],
  [
    "ztna_tun_writes_total",
    "write() calls on the TUN device (coalesced TCP segments go in one).",
    "writes",
  ],
  [
    "ztna_tun_segments_coalesced_total",
    "Packets written as part of a coalesced TCP super-packet.",
    "segmentsCoalesced",
  ],
  [
    "ztna_tun_super_packets_written_total",
    "Coalesced TCP super-packets written to the TUN device (one write each).",
    "superPacketsWritten",
  ],
];

/** Registers the TUN device's collectors; `tun` reads its status now. */
export function registerTunMetrics(registry: Registry, tun: () => TunStatus | undefined): void {
  const counters = () => tun()?.counters;
  readCounter(registry, {
    name: "ztna_tun_super_packets_read_total",
    help: "Super-packets (TSO/USO, offloads on) read from the TUN device, by kind.",
    labelNames: ["kind"],
    read: () => {
      const c = counters();
      return c
        ? byLabel("kind", { tcp4: c.gsoTcp4Reads, tcp6: c.gsoTcp6Reads, udp: c.gsoUdpReads })
        : [];
    },
  });
  for (const [name, help, key] of TUN_COUNTERS) {
    readCounter(registry, { name, help, read: () => single(counters()?.[key] ?? 0) });
  }
}

/** Registers the kernel mode's collectors; `kernel` reads its counters now. */
export function registerKernelMetrics(
  registry: Registry,
  kernel: () => KernelForwarderStats | undefined,
): void {
  readGauge(registry, {
    name: "ztna_kernel_sessions",
    help: "Sessions holding an address of the kernel mode's pool.",
    read: () => single(kernel()?.sessions ?? 0),
  });
  readCounter(registry, {
    name: "ztna_kernel_packets_total",
    help: "Packets of the kernel mode: from agents, forwarded into the TUN, and back to agents.",
    labelNames: ["direction"],
    read: () => {
      const k = kernel();
      return k
        ? byLabel("direction", {
          from_agents: k.packetsIn,
          forwarded: k.forwarded,
          to_agents: k.packetsOut,
        })
        : [];
    },
  });
  readCounter(registry, {
    name: "ztna_kernel_refused_total",
    help: "Packets from agents the kernel mode refused (RST or ICMP unreachable), by cause.",
    labelNames: ["cause"],
    read: () => {
      const k = kernel();
      return k ? byLabel("cause", { ...k.refused }) : [];
    },
  });
  readCounter(registry, {
    name: "ztna_kernel_nftables_dropped_total",
    help: "Packets the kernel mode's nftables table dropped: not to a forward target, or into " +
      "the TUN without being a reply.",
    read: () => single(kernel()?.nftablesDropped ?? 0),
  });
  readCounter(registry, {
    name: "ztna_kernel_dropped_total",
    help: "Packets the kernel mode dropped without an answer, by cause.",
    labelNames: ["cause"],
    read: () => {
      const k = kernel();
      if (!k) return [];
      const d = k.dropped;
      return byLabel("cause", {
        malformed: d.malformed,
        source: d.source,
        no_session: d.noSession,
        not_from_target: d.notFromTarget,
        write_failed: d.writeFailed,
      });
    },
  });
}
