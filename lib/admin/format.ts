/** Human output of `ztna status`: aligned columns, like `tailscale status`. */
import type { NodeStatus } from "./node_status.ts";

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

/** The status of an agent or connector, as lines. */
export function formatNodeStatus(status: NodeStatus): string[] {
  const { relay } = status;
  const lines = [
    `${status.role} for ${status.services.join(", ") || "no service"}; relay ${relay.address} ` +
    (relay.connected
      ? `(rtt ${rtt(relay.rttMs)}, sees us at ${relay.observed}, ${relay.reconnects} reconnects)`
      : "(not connected; reconnecting)"),
    status.nat
      ? `NAT ${status.nat.classic} (mapping ${status.nat.mapping}, filtering ${status.nat.filtering})`
      : "NAT not measured (the relay answers no STUN, or the check has not finished)",
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
