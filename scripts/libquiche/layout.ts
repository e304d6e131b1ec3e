/** Where the build puts its files. */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { QUICHE_VERSION } from "./version.ts";

/** The repository root, resolved from this file's location (not the cwd). */
export const REPO_ROOT: string = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/** File name of the shared library on this OS. */
export function libraryFileName(): string {
  if (Deno.build.os === "darwin") return "libquiche.dylib";
  if (Deno.build.os === "windows") return "quiche.dll";
  return "libquiche.so";
}

/** The default output directory: `<repo>/.cache/libquiche`. */
export function defaultOutDir(): string {
  return join(REPO_ROOT, ".cache", "libquiche");
}

/** Where everything lives under an output directory. */
export interface Layout {
  /** The output directory itself, absolute. */
  outDir: string;
  /** The final shared library. */
  library: string;
  /** The final C header (`include/quiche.h`). */
  header: string;
  /** JSON stamp recording what was built. */
  stamp: string;
  /** Intermediate files: fetch project, source copy, cargo target dir, log. */
  buildDir: string;
  /** The throwaway cargo project used to download the crate. */
  fetchDir: string;
  /** Copy of the crate sources that is built. */
  sourceDir: string;
  /** Cargo's `--target-dir`. */
  targetDir: string;
  /** Full output of cargo. */
  log: string;
}

/** Computes the file locations under `outDir` (relative to the cwd) for `version`. */
export function layout(outDir: string, version: string = QUICHE_VERSION): Layout {
  const abs = resolve(outDir);
  const buildDir = join(abs, "build");
  return {
    outDir: abs,
    library: join(abs, libraryFileName()),
    header: join(abs, "include", "quiche.h"),
    stamp: join(abs, "libquiche.stamp.json"),
    buildDir,
    fetchDir: join(buildDir, "fetch"),
    sourceDir: join(buildDir, `quiche-${version}`),
    targetDir: join(buildDir, "target"),
    log: join(buildDir, "build.log"),
  };
}
