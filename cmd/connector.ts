/** `ztna connector ...`: publishes a private service through the relay, without root. */
import { defineCommand } from "../lib/cli/command.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { integerOption, requireOption } from "../lib/cli/args.ts";
import { NODE_OPTIONS, NODE_OPTIONS_USAGE, nodeOptions } from "../lib/cli/node_options.ts";
import { ADMIN_SOCKET_OPTION, adminSocketUsage, serveUntilShutdown } from "../lib/cli/daemon.ts";
import { Connector } from "../lib/connector/connector.ts";
import { isServiceName } from "../lib/control/messages.ts";
import { parseHostPort } from "../lib/net/address.ts";
import { tcpHandler } from "../lib/connector/tcp_bridge.ts";
import {
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_AGENT,
} from "../lib/session/session_table.ts";

const USAGE =
  `Usage: ztna connector --service NAME --forward HOST:PORT [--forward ...] --allow AGENTS
                      --relay HOST:PORT --relay-name NAME --cert F --key F --ca F

Publishes the service NAME (its certificate must grant it) through the relay.
Agents' packets for the service are terminated here in user space: ICMP echo is
answered, UDP and TCP to port P are bridged to the --forward target with port P,
and everything else is refused. Needs no root.

Options:
  --service NAME       the service to publish (required)
  --forward HOST:PORT  a target for the service's port PORT (required; repeatable)
  --allow LIST         comma-separated agent names allowed in, or '*' for every agent (required)
  --max-sessions N     sessions at most (default ${DEFAULT_MAX_SESSIONS})
  --max-sessions-per-agent N
                       sessions of one agent at most (default ${DEFAULT_MAX_SESSIONS_PER_AGENT})

The access list is applied when the relay announces a session, before any
handshake: a refused agent hears 'access denied' at once and never learns this
connector's address.
${NODE_OPTIONS_USAGE}
${adminSocketUsage("connector")}`;

export const command = defineCommand({
  usage: USAGE,
  options: {
    ...NODE_OPTIONS,
    ...ADMIN_SOCKET_OPTION,
    service: { type: "string" },
    forward: { type: "string", multiple: true },
    allow: { type: "string" },
    "max-sessions": { type: "string" },
    "max-sessions-per-agent": { type: "string" },
  },
  async run({ values }) {
    const service = requireOption(values.service, "service");
    if (!isServiceName(service)) {
      throw new UsageError(`--service: invalid service name "${service}"`);
    }
    const forward = (values.forward ?? []).map((text) => {
      try {
        return parseHostPort(text);
      } catch (error) {
        throw new UsageError(`--forward: ${(error as Error).message}`);
      }
    });
    if (forward.length === 0) throw new UsageError("missing required option --forward");
    const allow = requireOption(values.allow, "allow").split(",").map((s) => s.trim()).filter(
      Boolean,
    );
    const connector = await Connector.start({
      ...nodeOptions(values),
      service,
      forward,
      allow,
      tcp: tcpHandler,
      sessionLimits: {
        maxSessions: integerOption(values["max-sessions"], "max-sessions", DEFAULT_MAX_SESSIONS),
        maxSessionsPerAgent: integerOption(
          values["max-sessions-per-agent"],
          "max-sessions-per-agent",
          DEFAULT_MAX_SESSIONS_PER_AGENT,
        ),
      },
    });
    console.log(
      `connector publishing ${service}; relay sees it at ${connector.node.link.observed}`,
    );
    try {
      await serveUntilShutdown("connector", values["admin-socket"], () => connector.status());
    } finally {
      await connector.close();
    }
  },
});
