/**
 * Builds libquiche (the C API of Cloudflare's quiche, with BoringSSL linked in)
 * from the pinned `quiche` crate on crates.io, without GitHub:
 *
 * 1. the prerequisites are checked before anything is written (prerequisites.ts);
 * 2. a throwaway cargo project downloads the crate, whose sources are copied to
 *    `<out>/build/quiche-<version>/` (fetch_sources.ts);
 * 3. `cargo build --release --locked --features ffi` runs there (cargo_build.ts);
 * 4. `libquiche.so` and `include/quiche.h` are installed in `<out>/`, then a stamp
 *    file records the version, so later runs return at once (install.ts).
 *
 * The output directory is a parameter (default: the repository's
 * `.cache/libquiche/`), so tests can work in a temporary folder.
 */
import { rm } from "node:fs/promises";
import { resolve } from "node:path";
import { BuildLog } from "./build_log.ts";
import { cargoBuild } from "./cargo_build.ts";
import { fetchSources } from "./fetch_sources.ts";
import { formatDuration } from "./format_duration.ts";
import { existingBuild, installBuild, removeStamp } from "./install.ts";
import { isFile } from "./is_file.ts";
import { defaultOutDir, layout } from "./layout.ts";
import { checkPrerequisites, formatMissing } from "./prerequisites.ts";
import { SetupError } from "./setup_error.ts";
import { type Env, findExecutable } from "./tools.ts";
import { QUICHE_VERSION } from "./version.ts";

/** Options of {@link setupLibquiche}. */
export interface SetupOptions {
  /** Output directory; default {@link defaultOutDir}. */
  outDir?: string;
  /** Rebuild even when the stamp says the version is already built. */
  force?: boolean;
  /** Delete `<outDir>/build` (sources and cargo target dir) first. */
  clean?: boolean;
  /** Environment for tool lookup and child processes; default the process's. */
  env?: Env;
  /** Progress sink, one line per call; default stderr with a `[setup]` prefix. */
  progress?: (line: string) => void;
}

/** What {@link setupLibquiche} did. */
export interface SetupResult {
  /** `override`: ZTNA_LIBQUICHE is used; `cached`: already built; `built`: built now. */
  status: "override" | "cached" | "built";
  /** The library that will be loaded. */
  library: string;
  /** The C header, when this setup manages it. */
  header?: string;
}

function printToStderr(line: string): void {
  console.error(`[setup] ${line}`);
}

/** The library `$ZTNA_LIBQUICHE` names, which must be a file. */
function overrideLibrary(override: string): string {
  const path = resolve(override);
  if (!isFile(path)) {
    throw new SetupError(
      `ZTNA_LIBQUICHE=${override} does not exist or is not a file; point it at a ` +
        `libquiche built from quiche ${QUICHE_VERSION} with --features ffi, or unset it so ` +
        "`deno task setup` builds one into .cache/libquiche/",
    );
  }
  return path;
}

/**
 * Makes libquiche available: uses `$ZTNA_LIBQUICHE` when set (it must exist),
 * returns at once when `outDir` already holds a build of the pinned version, and
 * otherwise checks prerequisites and builds it from crates.io.
 * Throws {@link SetupError} with a user-facing message on expected failures.
 */
export async function setupLibquiche(options: SetupOptions = {}): Promise<SetupResult> {
  const started = Date.now();
  const env = options.env ?? Deno.env.toObject();
  const progress = options.progress ?? printToStderr;

  if (env.ZTNA_LIBQUICHE) {
    const library = overrideLibrary(env.ZTNA_LIBQUICHE);
    progress(
      `ZTNA_LIBQUICHE is set: ${library} will be used (not building; its version is checked ` +
        "when ztna loads it)",
    );
    return { status: "override", library };
  }

  const paths = layout(options.outDir ?? defaultOutDir());
  const existing = options.force || options.clean ? undefined : await existingBuild(paths.outDir);
  if (existing) {
    progress(
      `libquiche ${QUICHE_VERSION} already built at ${existing.library} (--force rebuilds)`,
    );
    return { status: "cached", library: existing.library, header: existing.header };
  }

  progress(`building libquiche ${QUICHE_VERSION} into ${paths.outDir}`);
  const report = await checkPrerequisites(env);
  if (report.missing.length > 0) throw new SetupError(formatMissing(report.missing));
  progress(`prerequisites: ${report.found.join(", ")}`);
  const cargo = findExecutable("cargo", env);
  if (!cargo) throw new SetupError("cargo disappeared from PATH"); // checked above

  if (options.clean) {
    progress(`removing ${paths.buildDir}`);
    await rm(paths.buildDir, { recursive: true, force: true });
  }
  await Deno.mkdir(paths.buildDir, { recursive: true });
  await removeStamp(paths);
  const log = await BuildLog.create(paths.log);
  log.write(`libquiche ${QUICHE_VERSION} build, ${new Date().toISOString()}\n`);
  try {
    const context = { cargo, env, log, progress };
    await fetchSources(paths, context);
    const built = await cargoBuild(paths, context);
    await installBuild(paths, built, env);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new SetupError(`${message}\n  full log: ${paths.log}`);
  } finally {
    await log.close();
  }
  progress(
    `libquiche ${QUICHE_VERSION} built in ${formatDuration(Date.now() - started)}: ` +
      `${paths.library}, ${paths.header}`,
  );
  return { status: "built", library: paths.library, header: paths.header };
}
