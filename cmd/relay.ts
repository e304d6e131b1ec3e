/** `ztna relay --listen ADDR`: runs the relay that connectors and agents dial out to. */
import { getLogger } from "@logtape/logtape";
import { integerOption, requireOption } from "../lib/cli/args.ts";
import { defineCommand } from "../lib/cli/command.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { untilShutdown } from "../lib/cli/shutdown.ts";
import { checkHostName, InvalidIdentityRequest, unique } from "../lib/identity/names.ts";
import { type RelayIdentitySource, resolveRelayIdentity } from "../lib/identity/relay_identity.ts";
import { formatAddress, parseHostPort, type SocketAddress } from "../lib/net/address.ts";
import { Relay } from "../lib/relay/relay.ts";
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
  --stats-interval S   log counters at debug level every S seconds (default ${DEFAULT_STATS_INTERVAL_S})

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
  options: {
    listen: { type: "string" },
    "state-dir": { type: "string" },
    host: { type: "string", multiple: true },
    cert: { type: "string" },
    key: { type: "string" },
    ca: { type: "string" },
    "rate-pps": { type: "string" },
    "stats-interval": { type: "string" },
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
    const statsSeconds = integerOption(
      values["stats-interval"],
      "stats-interval",
      DEFAULT_STATS_INTERVAL_S,
    );
    const source = identitySource(values);

    const identity = await resolveRelayIdentity(source);
    if (identity.firstRunGuide) console.log(identity.firstRunGuide);
    log.info("identity {name} for hosts {hosts}, valid until {notAfter}, sha256 {sha256}", {
      name: identity.summary.name,
      hosts: identity.summary.hosts.join(", "),
      notAfter: identity.summary.notAfter,
      sha256: identity.summary.sha256Fingerprint,
    });
    const relay = startRelay({ listen, ...identity.files, packetsPerSecond });
    log.info("listening on {address}", { address: formatAddress(relay.address) });
    const stats = setInterval(() => {
      log.debug("stats: {nodes} nodes, {sessions} sessions, {forwarded} datagrams forwarded", {
        ...relay.snapshot(),
        ...relay.stats,
        forwarded: relay.stats.datagramsForwarded,
      });
    }, statsSeconds * 1000);
    const signal = await untilShutdown();
    log.info("{signal}: closing", { signal });
    clearInterval(stats);
    await relay.close();
    log.info("stopped");
  },
});
