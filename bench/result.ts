/**
 * Shared result type and formatting for the DATAGRAM throughput benchmarks
 * (Deno built-in QUIC vs. our libquiche-over-FFI endpoint).
 *
 * @module
 */

/** Outcome of one throughput run, as observed by the RECEIVER over a measured window. */
export interface ThroughputResult {
  /** Short label of the implementation under test, e.g. `"deno-builtin"`. */
  name: string;
  /** DATAGRAMs actually received (delivered) in the measured window. */
  packets: number;
  /** Payload bytes of those DATAGRAMs (QUIC, UDP and IP overhead not included). */
  bytes: number;
  /** Length of the measured window, in seconds. */
  seconds: number;
  /** DATAGRAMs the sender handed to its QUIC stack, if known (to show losses). */
  sent?: number;
}

/** Delivered DATAGRAMs per second (0 for an empty window). */
export function pps(r: ThroughputResult): number {
  return r.seconds > 0 ? r.packets / r.seconds : 0;
}

/** Delivered payload goodput in Gbit/s (10^9 bit/s, payload bytes only; 0 for an empty window). */
export function gbps(r: ThroughputResult): number {
  return r.seconds > 0 ? (r.bytes * 8) / r.seconds / 1e9 : 0;
}

/**
 * One-line human-readable summary, e.g.
 * `deno-builtin  287.1 kpps  2.53 Gbit/s  (1100-byte datagrams, 2.00 s)`;
 * when `sent` is known, the number lost is appended inside the parentheses.
 */
export function formatResult(r: ThroughputResult): string {
  const size = r.packets > 0 ? Math.round(r.bytes / r.packets) : 0;
  const lost = r.sent === undefined ? "" : `, ${r.sent - r.packets} of ${r.sent} sent lost`;
  return `${r.name}  ${(pps(r) / 1e3).toFixed(1)} kpps  ${gbps(r).toFixed(2)} Gbit/s  ` +
    `(${size}-byte datagrams, ${r.seconds.toFixed(2)} s${lost})`;
}
