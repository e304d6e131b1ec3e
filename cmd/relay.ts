/** `ztna relay --listen ADDR`: runs the relay that connectors and agents dial out to. */
import { getLogger } from "@logtape/logtape";
import { integerOption, requireOption } from "../lib/cli/args.ts";
import { defineCommand } from "../lib/cli/command.ts";
import { UsageError } from "../lib/cli/errors.ts";
import {
  ADMIN_SOCKET_OPTION,
  adminSocketUsage,
  METRICS_OPTION,
  metricsAddress,
  metricsUsage,
  serveUntilShutdown,
} from "../lib/cli/daemon.ts";
import { relayStatus } from "../lib/admin/relay_status.ts";
import { registerRelayMetrics } from "../lib/metrics/relay_metrics.ts";
import { reloadOnHangup } from "../lib/cli/reload.ts";
import { checkHostName, InvalidIdentityRequest, unique } from "../lib/identity/names.ts";
import { type RelayIdentitySource, resolveRelayIdentity } from "../lib/identity/relay_identity.ts";
import { formatAddress, parseHostPort, type SocketAddress } from "../lib/net/address.ts";
import { MAX_NODES, Relay, REQUESTS_PER_SECOND } from "../lib/relay/relay.ts";
import { MAX_SESSIONS, MAX_SESSIONS_PER_AGENT } from "../lib/relay/session_broker.ts";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_HANDSHAKES,
  DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
} from "../lib/quic/endpoint.ts";
import { StunServer } from "../lib/relay/stun_server.ts";
import { isWildcardIp } from "../lib/stun/server_addresses.ts";
import { DEFAULT_SOURCE_LIMITS } from "../lib/stun/source_limiter.ts";
import { resolveStateDir, STATE_DIR_ENV, SYSTEM_STATE_DIR } from "../lib/state_dir.ts";

const log = getLogger(["ztna", "relay"]);

const DEFAULT_STATS_INTERVAL_S = 60;
/** The relay's default per-node packet rate (`Relay.start`'s own default). */
const DEFAULT_RATE_PPS = 200_000;
const EADDRINUSE = 98;

const USAGE = `Usage: ztna relay --listen HOST:PORT [--state-dir DIR] [--host NAME]... [options]
       ztna relay --listen HOST:PORT --cert FILE --key FILE --ca FILE [options]

Runs the relay: connectors and agents dial out to it over QUIC with mutual
TLS; it admits only identities the organisation's CA issued, lets connectors
publish the services their certificates grant, pairs agents with connectors,
and forwards their end-to-end encrypted session packets without reading them.

Identity: with --cert/--key/--ca the relay uses those files and creates
nothing (production: the CA key stays offline). Without them it uses its state
directory (--state-dir, else $${STATE_DIR_ENV}, else ${SYSTEM_STATE_DIR} as root,
else $XDG_STATE_HOME/ztna, else ~/.local/state/ztna); on the first run it creates
a CA and its own identity there and prints the commands that issue identities
for your connectors and agents.

Options:
  --listen HOST:PORT   UDP address to listen on, e.g. 0.0.0.0:4433 or [::]:4433 (required)
  --state-dir DIR      where the relay's identity is kept or created
  --host NAME          DNS name nodes dial the relay by, for a new identity; repeatable
                       (default: this machine's host name and localhost)
  --cert FILE          PEM certificate of the relay (role relay, signed by --ca)
  --key FILE           PEM (PKCS#8) private key of --cert
  --ca FILE            PEM certificate of the organisation's CA
  --rate-pps N         per-node limit on forwarded packets per second (default ${DEFAULT_RATE_PPS})
  --max-nodes N        connected nodes at most; more are refused until some leave
                       (default ${MAX_NODES}; each identity holds one connection, a newer one
                       replaces it)
  --max-sessions N     live sessions at most (default ${MAX_SESSIONS})
  --max-sessions-per-agent N
                       live sessions of one agent at most (default ${MAX_SESSIONS_PER_AGENT})
  --requests-per-second N
                       a node's register/open-session requests per second, burst 4x
                       (default ${REQUESTS_PER_SECOND}); more are answered rate-limited
  --max-handshakes N   QUIC handshakes in progress at most (default ${DEFAULT_MAX_HANDSHAKES})
  --max-handshakes-per-address N
                       handshakes in progress from one IPv4 address or IPv6 /64 (default
                       ${DEFAULT_MAX_HANDSHAKES_PER_ADDRESS}); Initials past either bound are dropped
  --handshake-timeout-ms N
                       a handshake not done in N ms is dropped (default ${DEFAULT_HANDSHAKE_TIMEOUT_MS})
  --alt-port N         also answer STUN (NAT-behaviour tests) on UDP port N (needs a
                       specific --listen address)
  --alt-address IP     a second address of this machine to answer STUN on, on both ports
                       (needs a specific --listen address)
  --stun-rate N        STUN answers per second per source IP (default ${DEFAULT_SOURCE_LIMITS.perSourceRate}, burst ${DEFAULT_SOURCE_LIMITS.perSourceBurst})
  --no-stun            do not answer STUN at all
  --stats-interval S   log counters at debug level every S seconds (default ${DEFAULT_STATS_INTERVAL_S})
${adminSocketUsage("relay")}
${metricsUsage("relay")}

STUN: the relay answers STUN Binding requests (RFC 8489, with RFC 5780's
CHANGE-REQUEST, RESPONSE-ORIGIN and OTHER-ADDRESS) on its QUIC port, for
'ztna probe nat-type' and any RFC 5780 client; an answer is never more than 3x
its request, answers are rate limited per source IP, and malformed or unknown
STUN is dropped and counted. Full NAT classification needs --alt-address and
--alt-port.

Logs go to stderr ('listening on ADDR' once ready; --log-format json for machines).
SIGINT or SIGTERM closes every connection and exits 0.
Exit status: 0 stopped by a signal, 1 failure (e.g. port in use), 2 usage error.`;

/** Starts the relay; a busy port becomes an error saying so. */
function startRelay(options: Parameters<typeof Relay.start>[0]): Relay {
  const address = formatAddress(options.listen);
  try {
    return Relay.start(options);
  } catch (error) {
    if ((error as { errno?: number }).errno === EADDRINUSE) {
      throw new Error(`cannot listen on ${address}: address already in use (another relay?)`);
    }
    throw new Error(`cannot start the relay on ${address}: ${(error as Error).message}`);
  }
}

/** The STUN responder's options the flags select, or undefined with --no-stun. */
function stunOptions(values: {
  "no-stun"?: boolean;
  "alt-port"?: string;
  "alt-address"?: string;
  "stun-rate"?: string;
}, listen: SocketAddress): Omit<Parameters<typeof StunServer.start>[0], "endpoint"> | undefined {
  if (values["no-stun"]) {
    for (const flag of ["alt-port", "alt-address", "stun-rate"] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} and --no-stun contradict`);
    }
    return undefined;
  }
  const alternatePort = values["alt-port"] === undefined
    ? undefined
    : integerOption(values["alt-port"], "alt-port", 0, 1, 65535);
  let alternateIp: string | undefined;
  if (values["alt-address"] !== undefined) {
    const ip = values["alt-address"];
    try {
      alternateIp = parseHostPort(ip.includes(":") ? `[${ip}]:0` : `${ip}:0`).hostname;
    } catch {
      throw new UsageError(
        `invalid --alt-address '${values["alt-address"]}': expected an IP address`,
      );
    }
  }
  if ((alternateIp !== undefined || alternatePort !== undefined) && isWildcardIp(listen.hostname)) {
    throw new UsageError(
      `--alt-port and --alt-address need a specific --listen address, not ${
        formatAddress(listen)
      } (a wildcard socket cannot tell which address a STUN request came to)`,
    );
  }
  const rate = values["stun-rate"] === undefined
    ? undefined
    : integerOption(values["stun-rate"], "stun-rate", 0);
  return {
    alternateIp,
    alternatePort,
    limits: rate === undefined ? undefined : { perSourceRate: rate, perSourceBurst: 4 * rate },
  };
}

/** The identity source the flags select; throws UsageErrors for bad combinations. */
function identitySource(values: {
  cert?: string;
  key?: string;
  ca?: string;
  "state-dir"?: string;
  host?: string[];
}): RelayIdentitySource {
  const { cert, key, ca } = values;
  if (cert !== undefined || key !== undefined || ca !== undefined) {
    if (cert === undefined || key === undefined || ca === undefined) {
      throw new UsageError("--cert, --key and --ca go together");
    }
    if (values["state-dir"] !== undefined || values.host !== undefined) {
      throw new UsageError(
        "--state-dir and --host are for an identity the relay creates; not with --cert/--key/--ca",
      );
    }
    return { kind: "files", files: { certificateFile: cert, privateKeyFile: key, caFile: ca } };
  }
  let hosts: string[] | undefined;
  try {
    hosts = values.host && unique(values.host.map(checkHostName));
  } catch (error) {
    if (error instanceof InvalidIdentityRequest) throw new UsageError(error.message);
    throw error;
  }
  return { kind: "state", stateDir: resolveStateDir(values["state-dir"]), hosts };
}

/** The `relay` command. */
export const command = defineCommand({
  usage: USAGE,
  config: true,
  options: {
    listen: { type: "string" },
    "state-dir": { type: "string" },
    host: { type: "string", multiple: true },
    cert: { type: "string" },
    key: { type: "string" },
    ca: { type: "string" },
    "rate-pps": { type: "string" },
    "max-nodes": { type: "string" },
    "max-sessions": { type: "string" },
    "max-sessions-per-agent": { type: "string" },
    "requests-per-second": { type: "string" },
    "max-handshakes": { type: "string" },
    "max-handshakes-per-address": { type: "string" },
    "handshake-timeout-ms": { type: "string" },
    "stats-interval": { type: "string" },
    ...ADMIN_SOCKET_OPTION,
    ...METRICS_OPTION,
    "alt-port": { type: "string" },
    "alt-address": { type: "string" },
    "stun-rate": { type: "string" },
    "no-stun": { type: "boolean" },
  },
  async run({ values }) {
    let listen: SocketAddress;
    try {
      listen = parseHostPort(requireOption(values.listen, "listen"));
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw new UsageError(`invalid --listen: ${(error as Error).message}`);
    }
    const packetsPerSecond = integerOption(values["rate-pps"], "rate-pps", DEFAULT_RATE_PPS);
    const limits = {
      maxNodes: integerOption(values["max-nodes"], "max-nodes", MAX_NODES),
      maxSessions: integerOption(values["max-sessions"], "max-sessions", MAX_SESSIONS),
      maxSessionsPerAgent: integerOption(
        values["max-sessions-per-agent"],
        "max-sessions-per-agent",
        MAX_SESSIONS_PER_AGENT,
      ),
      requestsPerSecond: integerOption(
        values["requests-per-second"],
        "requests-per-second",
        REQUESTS_PER_SECOND,
      ),
      maxHandshakes: integerOption(
        values["max-handshakes"],
        "max-handshakes",
        DEFAULT_MAX_HANDSHAKES,
      ),
      maxHandshakesPerAddress: integerOption(
        values["max-handshakes-per-address"],
        "max-handshakes-per-address",
        DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
      ),
      handshakeTimeoutMs: integerOption(
        values["handshake-timeout-ms"],
        "handshake-timeout-ms",
        DEFAULT_HANDSHAKE_TIMEOUT_MS,
      ),
    };
    const statsSeconds = integerOption(
      values["stats-interval"],
      "stats-interval",
      DEFAULT_STATS_INTERVAL_S,
    );
    const source = identitySource(values);
    const stun = stunOptions(values, listen);
    const metrics = metricsAddress(values.metrics);

    const identity = await resolveRelayIdentity(source);
    if (identity.firstRunGuide) console.log(identity.firstRunGuide);
    log.info("identity {name} for hosts {hosts}, valid until {notAfter}, sha256 {sha256}", {
      name: identity.summary.name,
      hosts: identity.summary.hosts.join(", "),
      notAfter: identity.summary.notAfter,
      sha256: identity.summary.sha256Fingerprint,
    });
    const relay = startRelay({ listen, ...identity.files, packetsPerSecond, ...limits });
    let stunServer: StunServer | undefined;
    if (stun) {
      try {
        stunServer = StunServer.start({ endpoint: relay.endpoint, ...stun });
      } catch (error) {
        await relay.close();
        throw error;
      }
      log.info("STUN on {addresses}", {
        addresses: stunServer.listening.map(formatAddress).join(", "),
      });
    } else {
      log.info("STUN off (--no-stun)");
    }
    log.info("listening on {address}", { address: formatAddress(relay.address) });
    const stats = setInterval(() => {
      log.debug("stats: {nodes} nodes, {sessions} sessions, {forwarded} datagrams forwarded", {
        ...relay.snapshot(),
        ...relay.stats,
        forwarded: relay.stats.datagramsForwarded,
        stun: stunServer?.stats,
      });
    }, statsSeconds * 1000);
    const stopReloading = reloadOnHangup("relay", () => relay.reload(identity.files));
    let signal = "shutdown";
    try {
      signal = await serveUntilShutdown(
        "relay",
        values["admin-socket"],
        () => relayStatus(relay, stunServer),
        {
          metrics,
          collectors: (registry) => registerRelayMetrics(registry, relay, stunServer),
          certificateFile: identity.files.certificateFile,
        },
      );
    } finally {
      log.info("{signal}: closing", { signal });
      stopReloading();
      clearInterval(stats);
    }
    await stunServer?.close();
    await relay.close();
    log.info("stopped");
  },
});
