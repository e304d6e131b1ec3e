/**
 * What the long-running commands (agent, connector) share once their daemon
 * is up: the admin socket `ztna status` reads, served until SIGINT or SIGTERM.
 */
import { AdminServer } from "../admin/server.ts";
import { type DaemonRole, defaultAdminSocket } from "../admin/socket_path.ts";
import { untilShutdown } from "./shutdown.ts";

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
 * the first SIGINT or SIGTERM, then closes the socket and resolves.
 */
export async function serveUntilShutdown(
  role: DaemonRole,
  path: string | undefined,
  status: () => unknown,
): Promise<void> {
  const admin = await AdminServer.listen(path ?? defaultAdminSocket(role), status);
  try {
    await untilShutdown();
  } finally {
    await admin.close();
  }
}
