/** `ztna probe ping SERVICE ...`: pings a service through a session and shows the path each reply took. */
import { integerOption } from "../cli/args.ts";
import { defineCommand } from "../cli/command.ts";
import { UsageError } from "../cli/errors.ts";
import { NODE_OPTIONS, NODE_OPTIONS_USAGE, nodeOptions } from "../cli/node_options.ts";
import { isServiceName } from "../control/messages.ts";
import {
  DEFAULT_PING_COUNT,
  DEFAULT_PING_INTERVAL_MS,
  formatPingReply,
  pingService,
} from "./ping.ts";

const USAGE = `Usage: ztna probe ping SERVICE --relay HOST:PORT [--relay-name NAME]
                       --cert F --key F --ca F [--count N] [--interval-ms N] [--json]

Like 'tailscale ping': opens a session to SERVICE with an agent identity (no
TUN device, no root), sends ICMP echo requests through it (the connector
answers them) and prints each reply's round-trip time and the path its
request took: 'via relay' first, then 'direct IP:PORT' once the session went
direct.

Options:
  --count N            echo requests to send (default ${DEFAULT_PING_COUNT})
  --interval-ms N      pause between requests (default ${DEFAULT_PING_INTERVAL_MS})
  --json               one JSON object per reply, then a summary object
${NODE_OPTIONS_USAGE}

Exit status: 0 at least one reply, 1 none (or the session was refused), 2 usage error.`;

/** The `ping` probe, over the arguments after `ztna probe ping`. */
export const command = defineCommand({
  usage: USAGE,
  allowPositionals: true,
  options: {
    ...NODE_OPTIONS,
    count: { type: "string" },
    "interval-ms": { type: "string" },
    json: { type: "boolean" },
  },
  async run({ values, positionals }) {
    const [service, extra] = positionals;
    if (service === undefined) throw new UsageError("missing the SERVICE to ping");
    if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
    if (!isServiceName(service)) throw new UsageError(`invalid service name "${service}"`);
    const count = integerOption(values.count, "count", DEFAULT_PING_COUNT);
    const intervalMs = integerOption(
      values["interval-ms"],
      "interval-ms",
      DEFAULT_PING_INTERVAL_MS,
    );
    const node = nodeOptions(values);
    const summary = await pingService(
      { service, ...node, count, intervalMs },
      (reply) => console.log(values.json ? JSON.stringify(reply) : formatPingReply(service, reply)),
    );
    const direct = summary.directAfterMs === null
      ? "stayed on the relay"
      : `went direct ${(summary.directAfterMs / 1000).toFixed(2)} s after the session was up`;
    console.log(
      values.json
        ? JSON.stringify(summary)
        : `${summary.received}/${summary.sent} replies from ${service} (connector ${summary.connector}); ${direct}`,
    );
    if (summary.received === 0) throw new Error(`no reply from ${service}`);
  },
});
