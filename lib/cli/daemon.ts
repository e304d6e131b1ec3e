/**
 * What the long-running commands (agent, connector, relay) share once their
 * daemon is up: the admin socket `ztna status` reads, served until SIGINT or
 * SIGTERM.
 */
import { getLogger } from "@logtape/logtape";
import { AdminServer, AdminSocketInUseError } from "../admin/server.ts";
import { type DaemonRole, defaultAdminSocket } from "../admin/socket_path.ts";
import { untilShutdown } from "./shutdown.ts";

const log = getLogger(["ztna", "admin"]);

/** parseArgs declaration of `--admin-socket`. */
export const ADMIN_SOCKET_OPTION = { "admin-socket": { type: "string" } } as const;

/** Usage line of `--admin-socket`. */
export function adminSocketUsage(role: DaemonRole): string {
  return `  --admin-socket PATH  where 'ztna status' reads this ${role} (default ${
    defaultAdminSocket(role)
  })`;
}

/**
 * Serves `status` on the admin socket (`path`, or the role's default) until
 * the first SIGINT or SIGTERM, then closes the socket; resolves with the
 * signal's name. A socket another daemon answers on is not taken over: the
 * daemon runs on without one and says so.
 */
export async function serveUntilShutdown(
  role: DaemonRole,
  path: string | undefined,
  status: () => unknown,
): Promise<string> {
  let admin: AdminServer | undefined;
  try {
    admin = await AdminServer.listen(path ?? defaultAdminSocket(role), status);
  } catch (error) {
    if (!(error instanceof AdminSocketInUseError)) throw error;
    log.warn("{error}; 'ztna status' cannot reach this {role}", { error: error.message, role });
  }
  try {
    return await untilShutdown();
  } finally {
    await admin?.close();
  }
}
