/** `ztna status`: what a running agent, connector or relay on this host is doing. */
import { defineCommand } from "../lib/cli/command.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { AdminUnreachableError, readStatus } from "../lib/admin/client.ts";
import { formatNodeStatus, formatRelayStatus } from "../lib/admin/format.ts";
import type { NodeStatus } from "../lib/admin/node_status.ts";
import type { RelayStatus } from "../lib/admin/relay_status.ts";
import { type DaemonRole, defaultAdminSocket } from "../lib/admin/socket_path.ts";

const ROLES: readonly DaemonRole[] = ["agent", "connector", "relay"];

const USAGE = `Usage: ztna status [--role agent|connector|relay | --socket PATH] [--json]

Asks a running daemon on this host, through its admin socket, what it is
doing. An agent or connector: its relay link (address, RTT, the address the
relay sees, reconnects), its NAT, its certificate's expiry and each session
(service, peer, path: relay or direct IP:PORT, RTT, time on that path, bytes
and packets per path). A relay: its nodes by role, services and their
connectors, sessions with what it forwarded for each, drops by cause, refusals
and limits hit, and its certificate's expiry. Without --role or --socket it asks the
agent, then the connector, then the relay at their default sockets.

Options:
  --role ROLE          the daemon to ask at its default socket (${
  ROLES.map((r) => defaultAdminSocket(r)).join(", ")
})
  --socket PATH        the daemon's --admin-socket
  --json               print the daemon's status document as JSON

Exit status: 0 answered, 1 no daemon answers, 2 usage error.`;

export const command = defineCommand({
  usage: USAGE,
  options: {
    role: { type: "string" },
    socket: { type: "string" },
    json: { type: "boolean" },
  },
  async run({ values }) {
    if (values.role !== undefined && !ROLES.includes(values.role as DaemonRole)) {
      throw new UsageError(`--role: expected agent, connector or relay, got '${values.role}'`);
    }
    if (values.role !== undefined && values.socket !== undefined) {
      throw new UsageError("--role and --socket are alternatives");
    }
    const paths = values.socket !== undefined
      ? [values.socket]
      : values.role !== undefined
      ? [defaultAdminSocket(values.role as DaemonRole)]
      : ROLES.map((role) => defaultAdminSocket(role));
    let status: unknown;
    let lastError: Error | undefined;
    for (const path of paths) {
      try {
        status = await readStatus(path);
        break;
      } catch (error) {
        if (!(error instanceof AdminUnreachableError)) throw error;
        lastError = error;
      }
    }
    if (status === undefined) {
      throw paths.length === 1
        ? lastError!
        : new Error(`no ztna daemon answers at ${paths.join(", ")} (use --socket PATH)`);
    }
    if (values.json) {
      console.log(JSON.stringify(status, null, 2));
      return;
    }
    const role = (status as { role?: unknown }).role;
    if (role === "agent" || role === "connector") {
      console.log(formatNodeStatus(status as NodeStatus).join("\n"));
    } else if (role === "relay") {
      console.log(formatRelayStatus(status as RelayStatus).join("\n"));
    } else {
      console.log(JSON.stringify(status, null, 2));
    }
  },
});
