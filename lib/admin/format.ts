/** Human output of `ztna status`: aligned columns, like `tailscale status`. */
import type { TcpCounters } from "../tcp/counters.ts";
import type { NodeStatus, TunStatus } from "./node_status.ts";
import type { KernelForwarderStats } from "../connector/kernel/kernel_forwarder.ts";
import type { RelayStatus } from "./relay_status.ts";
import { type CertificateExpiryStatus, EXPIRY_WARNING_DAYS } from "../pki/expiry.ts";

/** Lays out rows as left-aligned columns two spaces apart. */
export function alignColumns(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join("  ")
      .trimEnd()
  );
}

/** `1.2 MB`, `980 B`: a byte count for people. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `2h5m`, `1m2s`, `45s`: a duration for people. */
export function formatAge(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${seconds % 60}s`;
  return `${Math.floor(minutes / 60)}h${minutes % 60}m`;
}

const rtt = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? "-" : `${ms.toFixed(2)} ms`;

/** A TUN device's line: offloads, then what was read and written. */
function formatTun(tun: TunStatus): string {
  const c = tun.counters;
  const superReads = c.gsoTcp4Reads + c.gsoTcp6Reads + c.gsoUdpReads;
  return `TUN ${tun.name} (mtu ${tun.mtu}, offloads ${tun.offloads}): read ${superReads} ` +
    `super-packets split into ${c.segmentsSplit}, ${c.readsDropped} reads dropped; wrote ` +
    `${c.packetsWritten} packets in ${c.writes} writes (${c.segmentsCoalesced} coalesced into ` +
    `${c.superPacketsWritten})`;
}

/**
 * The kernel mode's line: pool, table, what its sessions forwarded, refused and dropped, and
 * what the nftables table dropped.
 */
function formatKernel(kernel: KernelForwarderStats): string {
  const sum = (counts: Record<string, number>) =>
    Object.values(counts).reduce((total, n) => total + n, 0);
  return `kernel mode: pool ${kernel.pool}, nftables table ip ${kernel.table}, ` +
    `${kernel.sessions} sessions; ${kernel.forwarded} of ${kernel.packetsIn} packets from ` +
    `agents forwarded, ${kernel.packetsOut} back; ${sum(kernel.refused)} refused, ` +
    `${sum(kernel.dropped)} dropped; nftables dropped ${kernel.nftablesDropped}`;
}

/** The rootless connector's userspace TCP, totals since start, as one line. */
function formatTcp(c: TcpCounters): string {
  return `userspace TCP: ${plural(c.connectionsAccepted, "connection")} accepted ` +
    `(${c.connectionsActive} open, ${c.connectionsReset} reset, ${c.connectionsTimedOut} ` +
    `timed out); segments ${c.segmentsIn} in, ${c.segmentsOut} out, ${c.retransmissions} ` +
    `resent (${c.retransmissionTimeouts} timeouts, ${c.fastRetransmits} loss recoveries); ` +
    `${c.outOfOrder} out of order (${c.outOfOrderDropped} dropped)`;
}

/** The status of an agent or connector, as lines. */
export function formatNodeStatus(
  status: NodeStatus & { kernel?: KernelForwarderStats; terminator?: { tcp: TcpCounters } },
): string[] {
  const { relay } = status;
  const lines = [
    `${status.role} for ${status.services.join(", ") || "no service"}; relay ${relay.address} ` +
    (relay.connected
      ? `(rtt ${rtt(relay.rttMs)}, sees us at ${relay.observed}, ${relay.reconnects} reconnects)`
      : "(not connected; reconnecting)"),
    status.nat
      ? `NAT ${status.nat.classic} (mapping ${status.nat.mapping}, filtering ${status.nat.filtering})`
      : "NAT not measured (the relay answers no STUN, or the check has not finished)",
    ...(status.certificate ? [formatCertificate(status.certificate)] : []),
    ...(status.tun ? [formatTun(status.tun)] : []),
    ...(status.kernel ? [formatKernel(status.kernel)] : []),
    ...(status.terminator && !status.kernel ? [formatTcp(status.terminator.tcp)] : []),
    "",
  ];
  if (status.sessions.length === 0) return [...lines, "no sessions"];
  const rows = [["SERVICE", "PEER", "PATH", "RTT", "FOR", "SENT", "RECEIVED"]];
  for (const session of status.sessions) {
    const sent = session.paths.reduce((sum, p) => sum + p.bytesSent, 0);
    const received = session.paths.reduce((sum, p) => sum + p.bytesReceived, 0);
    rows.push([
      session.service,
      session.peer,
      session.path,
      rtt(session.rttMs),
      formatAge(session.pathAgeMs),
      formatBytes(sent),
      formatBytes(received),
    ]);
    for (const path of session.paths) {
      const label = path.path === "relay" ? "relay" : `direct ${path.path}`;
      const validated = path.state === "validated";
      rows.push([
        "",
        `${path.active ? "*" : " "} path`,
        validated ? label : `${label} (${path.state})`,
        // An unvalidated path's RTT is quiche's initial guess, not a measurement.
        validated ? rtt(path.rttMs) : "-",
        "",
        `${formatBytes(path.bytesSent)} / ${path.packetsSent} pkts`,
        `${formatBytes(path.bytesReceived)} / ${path.packetsReceived} pkts`,
      ]);
    }
  }
  return [...lines, ...alignColumns(rows)];
}

/** The certificate's expiry, as one line; within 30 days it says to renew. */
export function formatCertificate(certificate: CertificateExpiryStatus): string {
  const { file, notAfter, daysLeft, error } = certificate;
  if (error !== undefined || notAfter === null || daysLeft === null) {
    return `certificate ${file}: ${error ?? "unknown expiry"}`;
  }
  if (daysLeft < 0) return `certificate ${file} EXPIRED at ${notAfter}: renew it`;
  if (daysLeft < EXPIRY_WARNING_DAYS) {
    return `certificate ${file} expires in ${daysLeft} days, at ${notAfter}: renew it`;
  }
  return `certificate ${file} valid until ${notAfter} (${daysLeft} days)`;
}

/** `a 1, b 2` for the non-zero counts, or `none`. */
function counts(entries: [string, number][]): string {
  const hit = entries.filter(([, n]) => n > 0).map(([name, n]) => `${name} ${n}`);
  return hit.length > 0 ? hit.join(", ") : "none";
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The status of a relay, as lines. */
export function formatRelayStatus(status: RelayStatus): string[] {
  const { stats, endpoint } = status;
  const roles = status.nodesByRole;
  const lines = [
    `relay on ${status.listen}: ${plural(status.nodes, "node")} (${
      plural(roles.agent, "agent")
    }, ` +
    `${plural(roles.connector, "connector")}), ${plural(status.sessions.length, "session")}`,
    ...(status.certificate ? [formatCertificate(status.certificate)] : []),
    "",
  ];
  const services = Object.entries(status.connectors).sort(([a], [b]) => a.localeCompare(b));
  if (services.length === 0) lines.push("no services published");
  else {
    lines.push(...alignColumns([
      ["SERVICE", "CONNECTORS"],
      ...services.map(([service, names]) => [service, names.join(", ")]),
    ]));
  }
  lines.push("");
  if (status.sessions.length === 0) lines.push("no sessions");
  else {
    const rows = [[
      "SESSION",
      "SERVICE",
      "AGENT",
      "CONNECTOR",
      "STATE",
      "AGENT→CONN",
      "CONN→AGENT",
    ]];
    for (const s of status.sessions) {
      rows.push([
        s.id,
        s.service,
        s.agent,
        s.connector,
        s.state,
        `${formatBytes(s.agentToConnectorBytes)} / ${s.agentToConnector} pkts`,
        `${formatBytes(s.connectorToAgentBytes)} / ${s.connectorToAgent} pkts`,
      ]);
    }
    lines.push(...alignColumns(rows));
  }
  lines.push("");
  const summary: string[][] = [
    [
      "forwarded",
      `${plural(stats.datagramsForwarded, "packet")}, ${formatBytes(stats.bytesForwarded)}`,
    ],
    [
      "dropped",
      counts([
        ["no session", stats.droppedNoSession],
        ["rate limited", stats.droppedRateLimited],
        ["peer queue full", stats.droppedPeerQueueFull],
      ]),
    ],
    ["refused", counts(Object.entries(status.refusals).sort(([a], [b]) => a.localeCompare(b)))],
    [
      "sessions",
      `${stats.sessionsOpened} opened; refused: ${
        counts([
          ["by connectors", stats.sessionsRefused],
          ["relay limit", stats.sessionLimitHits],
          ["admission timeout", stats.admissionTimeouts],
        ])
      }`,
    ],
    [
      "nodes",
      `${stats.nodesConnected} admitted; refused: ${
        counts([
          ["no node role", stats.nodesRefused],
          ["relay full", stats.nodesRefusedFull],
        ])
      }; closed: ${
        counts([["replaced", stats.nodesReplaced], ["not reading", stats.nodesNotReading]])
      }`,
    ],
    [
      "handshakes",
      `${endpoint.connectionsAccepted} accepted; refused: ${
        counts([
          ["handshake bounds", endpoint.handshakesRefused],
          ["timed out", endpoint.handshakesTimedOut],
          ["no client certificate", endpoint.clientCertificateMissing],
          ["invalid retry token", endpoint.invalidTokens],
        ])
      }`,
    ],
  ];
  return [...lines, ...alignColumns(summary)];
}
