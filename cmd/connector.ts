/** `ztna connector ...`: publishes a private service through the relay, without root. */
import { defineCommand } from "../lib/cli/command.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { integerOption, requireOption } from "../lib/cli/args.ts";
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
import { Connector } from "../lib/connector/connector.ts";
import {
  joinServices,
  parseAllowList,
  parsePublish,
  PUBLISH_SYNTAX,
  type PublishedService,
  servicesFromTable,
} from "../lib/connector/services.ts";
import type { ConfigFileValues } from "../lib/cli/config_file.ts";
import { isServiceName } from "../lib/control/messages.ts";
import { parseHostPort } from "../lib/net/address.ts";
import { tcpHandler } from "../lib/connector/tcp_bridge.ts";
import type { KernelModeOptions } from "../lib/connector/kernel/kernel_forwarder.ts";
import { DEFAULT_POOL, parseIpv4Prefix } from "../lib/connector/kernel/address_pool.ts";
import {
  type ConnectorLimitOptions,
  DEFAULT_MAX_TCP_CONNECTIONS,
  DEFAULT_MAX_TCP_CONNECTIONS_PER_SESSION,
  DEFAULT_MAX_UDP_FLOWS,
  DEFAULT_MAX_UDP_FLOWS_PER_SESSION,
  DEFAULT_TCP_BUFFER_BUDGET_MIB,
} from "../lib/connector/limits.ts";
import { DEFAULT_RECEIVE_FLOOR } from "../lib/tcp/mod.ts";
import {
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_AGENT,
} from "../lib/session/session_table.ts";

const USAGE =
  `Usage: ztna connector --service NAME --forward HOST:PORT [--forward ...] --allow AGENTS
                      --relay HOST:PORT [--relay-name NAME] --cert F --key F --ca F
       ztna connector --publish '${PUBLISH_SYNTAX}' [--publish ...]
                      --relay HOST:PORT [--relay-name NAME] --cert F --key F --ca F
       ztna connector --config FILE
       (any of these with --tun NAME [--tun-pool CIDR]: kernel-forwarding mode, root)

Publishes services (its certificate must grant each) through the relay, from one
process and one identity. Agents' packets for a service are terminated here in
user space: ICMP echo is answered, UDP and TCP to port P are bridged to that
service's forward target with port P, and everything else is refused. Each
service has its own access list. Needs no root.

Options:
  --service NAME       a service to publish, with --forward and --allow
  --forward HOST:PORT  a target for the service's port PORT (repeatable)
  --allow LIST         comma-separated agent names allowed in, or '*' for every agent
  --publish SPEC       another service: ${PUBLISH_SYNTAX}
                       (repeatable; quote it for the shell), e.g.
                       --publish 'db=127.0.0.1:5432;allow=alice,bob'
  --max-sessions N     sessions at most (default ${DEFAULT_MAX_SESSIONS})
  --max-sessions-per-agent N
                       sessions of one agent at most (default ${DEFAULT_MAX_SESSIONS_PER_AGENT})
  --max-udp-flows N    UDP flows (a socket each) of all sessions at most (default ${DEFAULT_MAX_UDP_FLOWS})
  --max-udp-flows-per-session N
                       UDP flows of one session at most (default ${DEFAULT_MAX_UDP_FLOWS_PER_SESSION})
  --max-tcp-connections N
                       TCP connections of all sessions at most (default ${DEFAULT_MAX_TCP_CONNECTIONS})
  --max-tcp-connections-per-session N
                       TCP connections of one session at most (default ${DEFAULT_MAX_TCP_CONNECTIONS_PER_SESSION})
  --tcp-buffer-budget MIB
                       memory for the receive windows and unread data of all TCP
                       connections, in MiB (default ${DEFAULT_TCP_BUFFER_BUDGET_MIB}): windows shrink as it
                       fills; a connection that cannot reserve ${
    DEFAULT_RECEIVE_FLOOR / 1024
  } KiB is refused
  --tun NAME           kernel-forwarding mode (root or CAP_NET_ADMIN): sessions'
                       packets go into TUN device NAME and the kernel's TCP/UDP
                       carries them to the targets (IPv4 only), through an
                       nftables table ztna_NAME made at start and deleted at exit;
                       only the targets are reachable, as without it
  --tun-pool CIDR      the sessions' inner addresses in kernel mode (default
                       ${DEFAULT_POOL}; one per session)

In a --config file, services are tables (a --service or --publish of the same
name replaces one):
  [services.web]
  forward = ["127.0.0.1:8080", "127.0.0.1:8443"]
  allow = ["alice", "bob"]

The access list is applied when the relay announces a session, before any
handshake: a refused agent hears 'access denied' at once and never learns this
connector's address. A UDP flow or TCP connection beyond a limit, or whose
socket cannot be opened (the open-file limit reached), is refused with an ICMP
unreachable or a RST, counted and logged at most once a minute.
${NODE_OPTIONS_USAGE}
${adminSocketUsage("connector")}
${metricsUsage("connector")}`;

export const command = defineCommand({
  usage: USAGE,
  config: { tables: ["services"] },
  options: {
    ...NODE_OPTIONS,
    ...ADMIN_SOCKET_OPTION,
    ...METRICS_OPTION,
    service: { type: "string" },
    forward: { type: "string", multiple: true },
    allow: { type: "string" },
    publish: { type: "string", multiple: true },
    "max-sessions": { type: "string" },
    "max-sessions-per-agent": { type: "string" },
    "max-udp-flows": { type: "string" },
    "max-udp-flows-per-session": { type: "string" },
    "max-tcp-connections": { type: "string" },
    "max-tcp-connections-per-session": { type: "string" },
    "tcp-buffer-budget": { type: "string" },
    tun: { type: "string" },
    "tun-pool": { type: "string" },
  },
  async run({ values, configFile, reread }) {
    const services = publishedServices(values, configFile);
    const limits = connectorLimits(values);
    const metrics = metricsAddress(values.metrics);
    const connector = await Connector.start({
      ...nodeOptions(values),
      services,
      tcp: tcpHandler,
      sessionLimits: {
        maxSessions: integerOption(values["max-sessions"], "max-sessions", DEFAULT_MAX_SESSIONS),
        maxSessionsPerAgent: integerOption(
          values["max-sessions-per-agent"],
          "max-sessions-per-agent",
          DEFAULT_MAX_SESSIONS_PER_AGENT,
        ),
      },
      limits,
      kernel: kernelMode(values),
    });
    console.log(
      `connector publishing ${
        connector.serviceNames.join(", ")
      }; relay sees it at ${connector.node.link.observed}`,
    );
    // A reload reads the config file again: new identity files and access lists apply.
    const reloadInputs = () => {
      const now = reread?.() ?? { values, configFile };
      return {
        identity: nodeOptions(now.values).identity,
        services: publishedServices(now.values, now.configFile),
      };
    };
    const stopReloading = reloadOnHangup("connector", () => connector.reload(reloadInputs()));
    try {
      await serveUntilShutdown("connector", values["admin-socket"], () => connector.status(), {
        metrics,
        collectors: nodeDaemonCollectors(connector),
        refresh: () => connector.refreshStatus(),
        // The file a reload names from now on: its expiry is what status and metrics show.
        certificateFile: () => connector.certificateFile,
      });
    } finally {
      stopReloading();
      await connector.close();
    }
  },
});

/** The single-service flags' service, or null when --service is not given. */
function singleService(
  values: { service?: string; forward?: string[]; allow?: string },
): PublishedService | null {
  if (values.service === undefined) {
    if (values.forward !== undefined || values.allow !== undefined) {
      throw new UsageError("--forward and --allow need --service (or use --publish)");
    }
    return null;
  }
  const name = values.service;
  if (!isServiceName(name)) throw new UsageError(`--service: invalid service name "${name}"`);
  const forward = (values.forward ?? []).map((text) => {
    try {
      return parseHostPort(text);
    } catch (error) {
      throw new UsageError(`--forward: ${(error as Error).message}`);
    }
  });
  if (forward.length === 0) throw new UsageError("missing required option --forward");
  return { name, forward, allow: parseAllowList(requireOption(values.allow, "allow")) };
}

/**
 * The services to publish: --service's, every --publish, and the config file's
 * [services.NAME] tables whose names those do not give; one at least.
 */
function publishedServices(
  values: { service?: string; forward?: string[]; allow?: string; publish?: string[] },
  configFile: ConfigFileValues | undefined,
): PublishedService[] {
  const single = singleService(values);
  const given = joinServices(single ? [single] : [], (values.publish ?? []).map(parsePublish));
  const names = new Set(given.map((service) => service.name));
  const tables = configFile?.tables.services === undefined
    ? []
    : servicesFromTable(configFile.tables.services, configFile.file);
  const services = joinServices(given, tables.filter((service) => !names.has(service.name)));
  if (services.length === 0) {
    throw new UsageError(
      "missing required option --service (or --publish, or [services.NAME] in --config)",
    );
  }
  return services;
}

/** The kernel mode's options (--tun, --tun-pool), or undefined without --tun. */
function kernelMode(values: { tun?: string; "tun-pool"?: string }): KernelModeOptions | undefined {
  if (values.tun === undefined) {
    if (values["tun-pool"] !== undefined) throw new UsageError("--tun-pool needs --tun");
    return undefined;
  }
  const pool = values["tun-pool"] ?? DEFAULT_POOL;
  try {
    parseIpv4Prefix(pool);
  } catch (error) {
    throw new UsageError(`--tun-pool: ${(error as Error).message}`);
  }
  return { tun: values.tun, pool };
}

/** Most connections one TCP stack can track (lib/tcp's maxConnections bound). */
const MAX_TCP_CONNECTIONS_FLAG = 1 << 24;
/** Most UDP flows a flag may allow. */
const MAX_UDP_FLOWS_FLAG = 1 << 20;
/** Largest TCP buffer budget a flag may give, in MiB (1 TiB). */
const MAX_TCP_BUFFER_BUDGET_MIB = 1 << 20;

/** The flags that bound what all sessions use together. */
type LimitFlag =
  | "max-udp-flows"
  | "max-udp-flows-per-session"
  | "max-tcp-connections"
  | "max-tcp-connections-per-session"
  | "tcp-buffer-budget";

/** The limit flags, checked (a UsageError names a bad one). */
function connectorLimits(values: Partial<Record<LimitFlag, string>>): ConnectorLimitOptions {
  const flag = (name: LimitFlag, fallback: number, max: number) =>
    integerOption(values[name], name, fallback, 1, max);
  return {
    maxUdpFlows: flag("max-udp-flows", DEFAULT_MAX_UDP_FLOWS, MAX_UDP_FLOWS_FLAG),
    maxUdpFlowsPerSession: flag(
      "max-udp-flows-per-session",
      DEFAULT_MAX_UDP_FLOWS_PER_SESSION,
      MAX_UDP_FLOWS_FLAG,
    ),
    maxTcpConnections: flag(
      "max-tcp-connections",
      DEFAULT_MAX_TCP_CONNECTIONS,
      MAX_TCP_CONNECTIONS_FLAG,
    ),
    maxTcpConnectionsPerSession: flag(
      "max-tcp-connections-per-session",
      DEFAULT_MAX_TCP_CONNECTIONS_PER_SESSION,
      MAX_TCP_CONNECTIONS_FLAG,
    ),
    tcpBufferBytes: flag(
      "tcp-buffer-budget",
      DEFAULT_TCP_BUFFER_BUDGET_MIB,
      MAX_TCP_BUFFER_BUDGET_MIB,
    ) * 1024 * 1024,
  };
}
