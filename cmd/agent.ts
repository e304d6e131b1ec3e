/** `ztna agent ...`: captures traffic for service IPs on a TUN device and sends it through the relay. */
import { defineCommand } from "../lib/cli/command.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { NODE_OPTIONS, NODE_OPTIONS_USAGE, nodeOptions } from "../lib/cli/node_options.ts";
import {
  ADMIN_SOCKET_OPTION,
  adminSocketUsage,
  METRICS_OPTION,
  metricsAddress,
  metricsUsage,
  serveUntilShutdown,
} from "../lib/cli/daemon.ts";
import { nodeDaemonCollectors } from "../lib/metrics/node_metrics.ts";
import { reloadOnHangup } from "../lib/cli/reload.ts";
import { Agent, type AgentService } from "../lib/agent/agent.ts";
import { isServiceName } from "../lib/control/messages.ts";
import { parseIpAddress } from "../lib/packet/mod.ts";

/** Default address of the agent's TUN device (RFC 6598 shared space). */
const DEFAULT_TUN_ADDRESS = "100.64.0.1/32";

const USAGE = `Usage: ztna agent --tun NAME --service NAME=IP [--service ...]
                  --relay HOST:PORT [--relay-name NAME] --cert F --key F --ca F

Creates the TUN device NAME with a route to each service IP, opens an
end-to-end session to each service through the relay, and carries the
packets. Linux only; needs root or CAP_NET_ADMIN.

Options:
  --tun NAME           TUN device to create, e.g. ztna0 (required)
  --service NAME=IP    a service and the IP this host reaches it at (required; repeatable)
  --address CIDR       the TUN device's own address (default ${DEFAULT_TUN_ADDRESS})
${NODE_OPTIONS_USAGE}
${adminSocketUsage("agent")}
${metricsUsage("agent")}`;

function parseService(text: string): AgentService {
  const [name, ip, extra] = text.split("=");
  if (extra !== undefined || !name || !ip) {
    throw new UsageError(`--service: expected NAME=IP, got "${text}"`);
  }
  if (!isServiceName(name)) throw new UsageError(`--service: invalid service name "${name}"`);
  try {
    parseIpAddress(ip);
  } catch {
    throw new UsageError(`--service: invalid IP address "${ip}"`);
  }
  return { name, ip };
}

export const command = defineCommand({
  usage: USAGE,
  config: true,
  options: {
    ...NODE_OPTIONS,
    ...ADMIN_SOCKET_OPTION,
    ...METRICS_OPTION,
    tun: { type: "string" },
    service: { type: "string", multiple: true },
    address: { type: "string", multiple: true },
  },
  async run({ values }) {
    if (!values.tun) throw new UsageError("missing required option --tun");
    const services = (values.service ?? []).map(parseService);
    if (services.length === 0) throw new UsageError("missing required option --service");
    const metrics = metricsAddress(values.metrics);
    const agent = await Agent.start({
      ...nodeOptions(values),
      tun: values.tun,
      tunAddresses: values.address ?? [DEFAULT_TUN_ADDRESS],
      services,
    });
    console.log(
      `agent up on ${values.tun}: ${services.map((s) => `${s.name} at ${s.ip}`).join(", ")}; ` +
        `relay sees it at ${agent.node.link.observed}`,
    );
    const identity = nodeOptions(values).identity;
    const stopReloading = reloadOnHangup("agent", () => agent.node.reloadIdentity(identity));
    try {
      await serveUntilShutdown("agent", values["admin-socket"], () => agent.status(), {
        metrics,
        collectors: nodeDaemonCollectors(agent),
        certificateFile: identity.certificateFile,
      });
    } finally {
      stopReloading();
      await agent.close();
    }
  },
});
