/** Finding command-line tools on `PATH`, running them, and comparing their versions. */
import { basename, delimiter, extname, join, resolve } from "node:path";

/** Environment variables as a plain record (what `Deno.env.toObject()` returns). */
export type Env = Record<string, string | undefined>;

/** `env` without unset entries, as `Deno.Command` takes it. */
export function definedEnv(env: Env): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) result[key] = value;
  return result;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}

/** Finds an executable on `env.PATH`, or takes a name with a folder in it as a path. */
export function findExecutable(name: string, env: Env): string | undefined {
  const windows = Deno.build.os === "windows";
  const candidates = windows && extname(name) === "" ? [`${name}.exe`, name] : [name];
  if (basename(name) !== name) return candidates.map((c) => resolve(c)).find(isExecutable);
  const dirs = (env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  return dirs.flatMap((dir) => candidates.map((c) => join(dir, c))).find(isExecutable);
}

/**
 * Runs `path args` with exactly `env` and returns its stdout, or `undefined`
 * when it cannot start or fails (for probing tools, where either means "not usable").
 */
export async function probeOutput(
  path: string,
  args: string[],
  env: Env,
): Promise<string | undefined> {
  try {
    const output = await new Deno.Command(path, {
      args,
      env: definedEnv(env),
      clearEnv: true,
      stdout: "piped",
      stderr: "null",
    }).output();
    return output.success ? new TextDecoder().decode(output.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** Runs `tool --version` and returns the first `x.y[.z]` in its output. */
export async function toolVersion(path: string, env: Env): Promise<string | undefined> {
  const output = await probeOutput(path, ["--version"], env);
  return output?.match(/(\d+\.\d+(?:\.\d+)?)/)?.[1];
}

/** Compares dotted versions numerically: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map((n) => parseInt(n, 10) || 0);
  const pb = b.split(".").map((n) => parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}
