/**
 * Where a daemon's admin socket lives: `--admin-socket PATH`, else
 * `/run/ztna/<role>.sock` as root, else `$XDG_RUNTIME_DIR/ztna/<role>.sock`,
 * else `/tmp/ztna-<uid>/<role>.sock`.
 */

/** The daemons that serve an admin socket. */
export type DaemonRole = "agent" | "connector" | "relay";

/** The default admin socket of `role` for this user. */
export function defaultAdminSocket(
  role: DaemonRole,
  context: { uid?: number | null; env?: (name: string) => string | undefined } = {},
): string {
  const uid = context.uid !== undefined ? context.uid : Deno.uid();
  const env = context.env ?? ((name: string) => Deno.env.get(name));
  if (uid === 0) return `/run/ztna/${role}.sock`;
  const runtime = env("XDG_RUNTIME_DIR");
  if (runtime?.startsWith("/")) return `${runtime}/ztna/${role}.sock`;
  return `/tmp/ztna-${uid ?? "user"}/${role}.sock`;
}
