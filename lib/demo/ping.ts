/** Reading the summary of iputils `ping`. */

/** Replies and round-trip times of one `ping` run. */
export interface PingSummary {
  sent: number;
  received: number;
  /** Round-trip times in milliseconds; null when nothing came back. */
  minMs: number | null;
  avgMs: number | null;
  maxMs: number | null;
}

/** Parses the last lines of `ping`'s output; throws when they are missing. */
export function parsePing(output: string): PingSummary {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  if (!counts) throw new Error(`unexpected ping output: ${output.trim().split("\n").at(-1)}`);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(output);
  return {
    sent: Number(counts[1]),
    received: Number(counts[2]),
    minMs: rtt ? Number(rtt[1]) : null,
    avgMs: rtt ? Number(rtt[2]) : null,
    maxMs: rtt ? Number(rtt[3]) : null,
  };
}
