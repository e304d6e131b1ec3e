/**
 * Where ztna keeps state it creates for itself (the relay's first-run CA and
 * identity), following the XDG base directory convention for users and
 * `/var/lib` for system services.
 */

/** The environment variable that overrides the state directory. */
export const STATE_DIR_ENV = "ZTNA_STATE_DIR";

/** The state directory of a process running as root. */
export const SYSTEM_STATE_DIR = "/var/lib/ztna";

/** A state directory and the rule that chose it (for log lines). */
export interface StateDir {
  /** Absolute or as-given path. */
  path: string;
  /** Why this path: `--state-dir`, `$ZTNA_STATE_DIR`, `root`, `$XDG_STATE_HOME` or `$HOME`. */
  source: "--state-dir" | "$ZTNA_STATE_DIR" | "root" | "$XDG_STATE_HOME" | "$HOME";
}

/** What {@link defaultStateDir} looks at; defaults to this process's environment and user. */
export interface StateDirContext {
  /** Reads an environment variable. */
  env?: (name: string) => string | undefined;
  /** The effective user ID, or null where there is none (Windows). */
  uid?: number | null;
}

/**
 * The default state directory, first match wins:
 * `$ZTNA_STATE_DIR`; `/var/lib/ztna` when running as root; `$XDG_STATE_HOME/ztna`;
 * `$HOME/.local/state/ztna`. Throws when none applies (no `$HOME`).
 */
export function defaultStateDir(context: StateDirContext = {}): StateDir {
  const env = context.env ?? ((name: string) => Deno.env.get(name));
  const uid = context.uid !== undefined ? context.uid : Deno.uid();
  const explicit = env(STATE_DIR_ENV);
  if (explicit) return { path: explicit, source: "$ZTNA_STATE_DIR" };
  if (uid === 0) return { path: SYSTEM_STATE_DIR, source: "root" };
  // XDG requires an absolute path; a relative one is to be ignored.
  const xdg = env("XDG_STATE_HOME");
  if (xdg && xdg.startsWith("/")) {
    return { path: `${trimSlashes(xdg)}/ztna`, source: "$XDG_STATE_HOME" };
  }
  const home = env("HOME");
  if (home) return { path: `${trimSlashes(home)}/.local/state/ztna`, source: "$HOME" };
  throw new Error(
    `cannot choose a state directory: set ${STATE_DIR_ENV} or HOME, or give --state-dir`,
  );
}

/**
 * The state directory to use: `flag` (from `--state-dir`) if given, else
 * {@link defaultStateDir}.
 */
export function resolveStateDir(flag: string | undefined, context: StateDirContext = {}): StateDir {
  if (flag !== undefined && flag !== "") return { path: flag, source: "--state-dir" };
  return defaultStateDir(context);
}

function trimSlashes(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}
