/** Finding libclang the way clang-sys (bindgen's loader, used by boring-sys) does. */
import { globSync } from "node:fs";
import { join } from "node:path";
import { isFile } from "./is_file.ts";
import { type Env, findExecutable, probeOutput } from "./tools.ts";

/** Where clang-sys looks for libclang on Linux, in its order. */
const LIBCLANG_DIRS_LINUX = [
  "/usr/local/llvm*/lib*",
  "/usr/local/lib*/*/*",
  "/usr/local/lib*/*",
  "/usr/local/lib*",
  "/usr/lib*/*/*",
  "/usr/lib*/*",
  "/usr/lib*",
];

/** Where clang-sys looks for libclang on macOS, in its order. */
const LIBCLANG_DIRS_MACOS = [
  "/usr/local/opt/llvm*/lib/llvm*/lib",
  "/Library/Developer/CommandLineTools/usr/lib",
  "/Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/lib",
  "/usr/local/opt/llvm*/lib",
  "/opt/homebrew/opt/llvm*/lib",
];

/** The libclang shared library directly in `dir`, if any (none when `dir` is a file). */
function libclangIn(dir: string): string | undefined {
  const pattern = Deno.build.os === "darwin"
    ? /^libclang\.dylib$/
    : /^libclang(-[0-9][^/]*)?\.so(\.[0-9.]+)?$/;
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (pattern.test(entry.name)) return join(dir, entry.name);
    }
  } catch {
    // Not a readable directory: clang-sys skips it too.
  }
  return undefined;
}

/** `$LD_LIBRARY_PATH`, then the system folders, lazily (globs expand on demand). */
function* systemSearchDirs(env: Env): Generator<string> {
  yield* (env.LD_LIBRARY_PATH ?? "").split(":").filter((dir) => dir !== "");
  const patterns = Deno.build.os === "darwin" ? LIBCLANG_DIRS_MACOS : LIBCLANG_DIRS_LINUX;
  for (const pattern of patterns) yield* globSync(pattern);
}

/**
 * Finds the libclang shared library that bindgen (run by boring-sys's build
 * script) loads, searching like clang-sys does: `$LIBCLANG_PATH`,
 * `llvm-config --libdir`, `$LD_LIBRARY_PATH`, then the usual system folders.
 */
export async function findLibclang(env: Env): Promise<string | undefined> {
  const fromEnv = env.LIBCLANG_PATH;
  if (fromEnv) {
    const found = isFile(fromEnv) ? fromEnv : libclangIn(fromEnv);
    if (found) return found;
  }
  const llvmConfig = findExecutable(env.LLVM_CONFIG_PATH ?? "llvm-config", env);
  const llvmLibdir = llvmConfig && (await probeOutput(llvmConfig, ["--libdir"], env))?.trim();
  const fromLlvmConfig = llvmLibdir ? libclangIn(llvmLibdir) : undefined;
  if (fromLlvmConfig) return fromLlvmConfig;

  for (const dir of systemSearchDirs(env)) {
    const found = libclangIn(dir);
    if (found) return found;
  }
  return undefined;
}
