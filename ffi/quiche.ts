/**
 * Loads libquiche with `Deno.dlopen` and checks it is the version this binding
 * was written for. The library is found, in order, at `$ZTNA_LIBQUICHE`, next to
 * the running executable (a compiled `ztna`), or in the repository's build cache
 * (`.cache/libquiche/libquiche.so`, made by `deno task setup`).
 */
import { libc, LINUX } from "./libc.ts";
import { quicheSymbols } from "./quiche_symbols.ts";

/** The quiche crate version whose include/quiche.h this binding follows. */
export const BOUND_QUICHE_VERSION = "0.30.0";

/** The loaded library's symbols. */
export type Quiche = Deno.DynamicLibrary<typeof quicheSymbols>["symbols"];

let loaded: { path: string; symbols: Quiche } | undefined;

const LIB_NAME = Deno.build.os === "darwin" ? "libquiche.dylib" : "libquiche.so";

/** Candidate paths for libquiche, most specific first. */
export function libquicheCandidates(): string[] {
  const fromEnv = Deno.env.get("ZTNA_LIBQUICHE");
  if (fromEnv) return [fromEnv];
  const exeDir = Deno.execPath().replace(/[/\\][^/\\]*$/, "");
  const cache = new URL(`../.cache/libquiche/${LIB_NAME}`, import.meta.url);
  const candidates = [`${exeDir}/${LIB_NAME}`];
  if (cache.protocol === "file:") candidates.push(decodeURIComponent(cache.pathname));
  return candidates;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Reads a NUL-terminated C string. */
export function cString(pointer: Deno.PointerValue): string {
  if (pointer === null) return "";
  return new Deno.UnsafePointerView(pointer).getCString();
}

/**
 * Returns libquiche's symbols, loading the library on first use. Throws with the
 * paths tried, or with both versions when the library is not the bound one.
 */
export function quiche(): Quiche {
  if (loaded) return loaded.symbols;
  const candidates = libquicheCandidates();
  const path = candidates.find(exists);
  if (!path) {
    throw new Error(
      `libquiche not found (tried ${candidates.join(", ")}); ` +
        "run `deno task setup` to build it, or set ZTNA_LIBQUICHE=/path/to/libquiche.so",
    );
  }
  let library: Deno.DynamicLibrary<typeof quicheSymbols>;
  try {
    library = Deno.dlopen(path, quicheSymbols);
  } catch (error) {
    throw new Error(`cannot load libquiche from ${path}: ${(error as Error).message}`);
  }
  const version = cString(library.symbols.quiche_version());
  if (version !== BOUND_QUICHE_VERSION) {
    library.close();
    throw new Error(
      `libquiche at ${path} is version ${version}, but ztna is bound to ${BOUND_QUICHE_VERSION}; ` +
        "rebuild it with `deno task setup --force` or point ZTNA_LIBQUICHE at a matching build",
    );
  }
  // Pin the library for the life of the process: when Deno unloads it at exit,
  // BoringSSL's thread-local destructors would otherwise run in unmapped code.
  if (Deno.build.os === "linux") {
    libc().dlopen(new TextEncoder().encode(`${path}\0`), LINUX.RTLD_NOW | LINUX.RTLD_NODELETE);
  }
  loaded = { path, symbols: library.symbols };
  return loaded.symbols;
}

/** The loaded library's version and path (loads it if needed). */
export function libquicheInfo(): { version: string; path: string } {
  quiche();
  return { version: BOUND_QUICHE_VERSION, path: loaded!.path };
}
