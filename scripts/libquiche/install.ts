/**
 * Installs a finished build into the output folder: the library and header are
 * replaced atomically, then a stamp file marks the build as complete.
 */
import { copyFile, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { isFile } from "./is_file.ts";
import { type Layout, layout } from "./layout.ts";
import { SetupError } from "./setup_error.ts";
import { type Env, findExecutable, toolVersion } from "./tools.ts";
import { QUICHE_FEATURES, QUICHE_VERSION } from "./version.ts";

/** Contents of the stamp file written after a successful build. */
interface Stamp {
  /** The quiche crate version that was built. */
  version: string;
  /** Cargo features used. */
  features: string[];
  /** ISO date of the build. */
  builtAt: string;
  /** `rustc --version` of the compiler used, when known. */
  rustc?: string;
}

function isStamp(value: unknown): value is Stamp {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.version === "string" && Array.isArray(record.features) &&
    typeof record.builtAt === "string";
}

/** Reads a stamp file; `undefined` when it is missing or unreadable. */
async function readStamp(path: string): Promise<Stamp | undefined> {
  try {
    const parsed: unknown = JSON.parse(await Deno.readTextFile(path));
    return isStamp(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Returns the layout when `outDir` holds a finished build of {@link QUICHE_VERSION}
 * (the stamp says so, library and header exist), else `undefined`.
 */
export async function existingBuild(outDir: string): Promise<Layout | undefined> {
  const paths = layout(outDir);
  const stamp = await readStamp(paths.stamp);
  if (stamp?.version !== QUICHE_VERSION) return undefined;
  return isFile(paths.library) && isFile(paths.header) ? paths : undefined;
}

/** Deletes the stamp, so an interrupted build is never taken for a finished one. */
export async function removeStamp(paths: Layout): Promise<void> {
  await rm(paths.stamp, { force: true });
}

/** Copies a file next to its destination, then renames it into place. */
async function installFile(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  const temporary = `${to}.tmp-${Deno.pid}`;
  try {
    await copyFile(from, temporary);
    await rename(temporary, to);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => {}); // Best effort: report `error`.
    throw new SetupError(`cannot install ${from} as ${to}: ${(error as Error).message}`);
  }
}

/**
 * Installs the built library and the crate's `include/quiche.h`, then writes
 * the stamp (with the rustc version found in `env`).
 */
export async function installBuild(paths: Layout, builtLibrary: string, env: Env): Promise<void> {
  await installFile(builtLibrary, paths.library);
  await installFile(join(paths.sourceDir, "include", "quiche.h"), paths.header);
  const rustc = findExecutable(env.RUSTC ?? "rustc", env);
  const stamp: Stamp = {
    version: QUICHE_VERSION,
    features: [...QUICHE_FEATURES],
    builtAt: new Date().toISOString(),
    rustc: rustc ? `rustc ${(await toolVersion(rustc, env)) ?? "?"}` : undefined,
  };
  await writeFile(paths.stamp, JSON.stringify(stamp, null, 2) + "\n");
}
