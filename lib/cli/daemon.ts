/**
 * What the long-running commands (agent, connector, relay) share once their
 * daemon is up: the admin socket `ztna status` reads, the Prometheus metrics
 * endpoint (`--metrics`), and the watch on the certificate's expiry (a warning
 * at start and once a day within 30 days of it, shown in status, exported as a
 * gauge), all served until SIGINT or SIGTERM.
 */
import { getLogger } from "@logtape/logtape";
import type { Registry } from "prom-client";
import { AdminServer, AdminSocketInUseError } from "../admin/server.ts";
import { type DaemonRole, defaultAdminSocket } from "../admin/socket_path.ts";
import { daemonRegistry } from "../metrics/registry.ts";
import { MetricsServer } from "../metrics/server.ts";
import { parseHostPort, type SocketAddress } from "../net/address.ts";
import { CertificateExpiry } from "../pki/expiry.ts";
import { UsageError } from "./errors.ts";
import { untilShutdown } from "./shutdown.ts";

const log = getLogger(["ztna", "admin"]);

/** How often the certificate's expiry is checked for the log. */
const EXPIRY_CHECK_MS = 86_400_000;

/** parseArgs declaration of `--admin-socket`. */
export const ADMIN_SOCKET_OPTION = { "admin-socket": { type: "string" } } as const;

/** parseArgs declaration of `--metrics`. */
export const METRICS_OPTION = { metrics: { type: "string" } } as const;

/** Usage line of `--admin-socket`. */
export function adminSocketUsage(role: DaemonRole): string {
  return `  --admin-socket PATH  where 'ztna status' reads this ${role} (default ${
    defaultAdminSocket(role)
  })`;
}

/** Usage lines of `--metrics`. */
export function metricsUsage(role: DaemonRole): string {
  return `  --metrics HOST:PORT  serve this ${role}'s Prometheus metrics at http://HOST:PORT/metrics
                       (e.g. 127.0.0.1:9464; off by default)`;
}

/** The `--metrics` address, or undefined when not given; a bad one is a UsageError. */
export function metricsAddress(value: string | undefined): SocketAddress | undefined {
  if (value === undefined) return undefined;
  try {
    return parseHostPort(value);
  } catch (error) {
    throw new UsageError(`invalid --metrics '${value}': ${(error as Error).message}`);
  }
}

/** What a daemon serves besides its admin socket. */
export interface DaemonExtras {
  /** Serve Prometheus metrics here (from {@link metricsAddress}). */
  metrics?: SocketAddress;
  /** Registers the daemon's own collectors (relay or node metrics) in its registry. */
  collectors?: (registry: Registry) => void;
  /**
   * Reads the figures that cannot be read synchronously (the kernel mode's nftables
   * counter); awaited before each status answer and each metrics scrape.
   */
  refresh?: () => Promise<void>;
  /**
   * The daemon's certificate file (or a function naming the current one, for
   * a daemon that reloads its identity): its expiry is read on demand.
   */
  certificateFile?: string | (() => string);
}

/**
 * Serves `status` on the admin socket (`path`, or the role's default) and, with
 * `extras.metrics`, Prometheus metrics, until the first SIGINT or SIGTERM, then
 * closes both; resolves with the signal's name. A socket another daemon
 * answers on is not taken over: the daemon runs on without one and says so. A
 * metrics address in use is an error (MetricsAddressInUseError).
 */
export async function serveUntilShutdown(
  role: DaemonRole,
  path: string | undefined,
  status: () => unknown,
  extras: DaemonExtras = {},
): Promise<string> {
  // Listen for the stop signal before anything is awaited: a SIGTERM right after the daemon
  // said it is up must close it cleanly, not kill it with the default action.
  const stop = untilShutdown();
  const expiry = extras.certificateFile === undefined
    ? undefined
    : new CertificateExpiry(extras.certificateFile);
  const metrics = extras.metrics && startMetrics(extras.metrics, extras, expiry);
  let admin: AdminServer | undefined;
  try {
    const document = withCertificate(status, expiry);
    const refresh = extras.refresh;
    admin = await AdminServer.listen(
      path ?? defaultAdminSocket(role),
      refresh ? async () => (await refresh(), document()) : document,
    );
  } catch (error) {
    if (!(error instanceof AdminSocketInUseError)) {
      await metrics?.close();
      throw error;
    }
    log.warn("{error}; 'ztna status' cannot reach this {role}", { error: error.message, role });
  }
  const warn = () => {
    const warning = expiry?.warning();
    if (warning) log.warn("{warning}", { warning });
  };
  warn();
  const daily = setInterval(warn, EXPIRY_CHECK_MS);
  try {
    return await stop;
  } finally {
    clearInterval(daily);
    await admin?.close();
    await metrics?.close();
  }
}

/** The status document with the certificate's expiry added. */
function withCertificate(status: () => unknown, expiry: CertificateExpiry | undefined) {
  if (!expiry) return status;
  return () => {
    const document = status();
    return typeof document === "object" && document !== null
      ? { ...document, certificate: expiry.status() }
      : document;
  };
}

/** The daemon's registry (process, certificate and its own collectors), served at `address`. */
function startMetrics(
  address: SocketAddress,
  extras: DaemonExtras,
  expiry: CertificateExpiry | undefined,
): MetricsServer {
  const server = MetricsServer.listen(
    address,
    daemonRegistry(expiry, extras.collectors),
    extras.refresh,
  );
  log.info("metrics at {url}", { url: server.url });
  return server;
}
