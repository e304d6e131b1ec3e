/**
 * Builds libquiche (the C API of Cloudflare's quiche, with BoringSSL linked in)
 * from the pinned `quiche` crate on crates.io, without GitHub:
 *
 * 1. a throwaway cargo project under `<out>/build/fetch/` depends on
 *    `quiche = "=QUICHE_VERSION"`; `cargo fetch` downloads it and
 *    `cargo metadata` tells where the crate's sources landed;
 * 2. the sources are copied to `<out>/build/quiche-<version>/`;
 * 3. `cargo build --release --locked --features ffi` runs there (the crate ships
 *    its Cargo.lock; boring-sys builds BoringSSL from vendored sources);
 * 4. `libquiche.so` and `include/quiche.h` are copied to `<out>/`, then a stamp
 *    file records the version, so later runs return at once.
 *
 * Every function takes the output directory as a parameter (the default is the
 * repository's `.cache/libquiche/`), so tests can work in a temporary folder.
 */

/** The quiche crate version that is built (and that ffi/quiche.ts is bound to). */
export const QUICHE_VERSION = "0.30.0";

/** Cargo features enabled for the build: `ffi` exports the C API. */
export const QUICHE_FEATURES: readonly string[] = ["ffi"];

/** Oldest rustc that quiche 0.30.0 accepts (its `rust-version`). */
export const MIN_RUST_VERSION = "1.88.0";

/** Oldest cmake that the vendored BoringSSL accepts (`cmake_minimum_required`). */
export const MIN_CMAKE_VERSION = "3.22.0";

// Small path helpers: `node:` modules would need @types/node for `deno check`.

function isAbsolute(path: string): boolean {
  return path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path);
}

/** Joins path segments with `/` and removes `.`, `..` and doubled separators. */
function join(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/").replaceAll("\\", "/");
  const absolute = joined.startsWith("/");
  const out: string[] = [];
  for (const segment of joined.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else if (segment !== ".." || !absolute) out.push(segment);
  }
  return (absolute ? "/" : "") + out.join("/") || (absolute ? "/" : ".");
}

function resolve(path: string): string {
  return join(isAbsolute(path) ? path : `${Deno.cwd()}/${path}`);
}

function dirname(path: string): string {
  const normalized = join(path);
  const index = normalized.lastIndexOf("/");
  return index <= 0 ? (normalized.startsWith("/") ? "/" : ".") : normalized.slice(0, index);
}

/** `path` relative to `from` when it lies inside it, else `path` unchanged. */
function relative(from: string, path: string): string {
  if (path === from) return ".";
  return path.startsWith(`${from}/`) ? path.slice(from.length + 1) : path;
}

function fileUrlToPath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  return /^\/[A-Za-z]:/.test(path) ? path.slice(1) : path;
}

/** The repository root, resolved from this file's location (not the cwd). */
export const REPO_ROOT: string = join(fileUrlToPath(new URL("..", import.meta.url)));

/** Environment variables as a plain record (what `Deno.env.toObject()` returns). */
export type Env = Record<string, string | undefined>;

/** An expected failure; its message is meant for the user as is. */
export class SetupError extends Error {
  override name = "SetupError";
}

/** File name of the shared library on this OS. */
export function libraryFileName(os: typeof Deno.build.os = Deno.build.os): string {
  if (os === "darwin") return "libquiche.dylib";
  if (os === "windows") return "quiche.dll";
  return "libquiche.so";
}

/** The default output directory: `<repo>/.cache/libquiche`. */
export function defaultOutDir(repoRoot: string = REPO_ROOT): string {
  return join(repoRoot, ".cache", "libquiche");
}

/** Where everything lives under an output directory. */
export interface Layout {
  /** The output directory itself. */
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

/** Computes the file locations under `outDir` for `version`. */
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

/** Contents of the stamp file written after a successful build. */
export interface Stamp {
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

/** Reads the stamp file; `undefined` when it is missing or unreadable. */
export async function readStamp(outDir: string): Promise<Stamp | undefined> {
  try {
    const parsed: unknown = JSON.parse(await Deno.readTextFile(layout(outDir).stamp));
    return isStamp(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

function isFileSync(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function isDirSync(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Returns the layout when `outDir` holds a finished build of `version` (stamp
 * says so, library and header exist), else `undefined`.
 */
export async function existingBuild(
  outDir: string,
  version: string = QUICHE_VERSION,
): Promise<Layout | undefined> {
  const paths = layout(outDir, version);
  const stamp = await readStamp(outDir);
  if (stamp?.version !== version) return undefined;
  if (!(await isFile(paths.library)) || !(await isFile(paths.header))) return undefined;
  return paths;
}

// ---------------------------------------------------------------------------
// Prerequisites

/** A missing or unsuitable build prerequisite. */
export interface MissingPrerequisite {
  /** What is missing, e.g. "cargo". */
  name: string;
  /** Why it is needed or what is wrong with the installed one. */
  problem: string;
  /** How to get it on Debian/Ubuntu. */
  fix: string;
}

/** Result of {@link checkPrerequisites}. */
export interface PrerequisiteReport {
  /** Tools found, with their path or version, for the progress line. */
  found: string[];
  /** Everything that is missing; empty when the build can start. */
  missing: MissingPrerequisite[];
}

/** Finds an executable on `PATH` (or takes an absolute/relative path as is). */
export function findExecutable(name: string, env: Env): string | undefined {
  const windows = Deno.build.os === "windows";
  const candidates = windows && !/\.[a-z]+$/i.test(name) ? [`${name}.exe`, name] : [name];
  if (name.includes("/") || (windows && name.includes("\\"))) {
    return candidates.map((c) => resolve(c)).find(isExecutable);
  }
  const dirs = (env.PATH ?? "").split(windows ? ";" : ":").filter((d) => d !== "");
  for (const dir of dirs) {
    for (const candidate of candidates) {
      const path = join(dir, candidate);
      if (isExecutable(path)) return path;
    }
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) return false;
    return info.mode === null || (info.mode & 0o111) !== 0;
  } catch {
    return false;
  }
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

/** Runs `tool --version` and returns the first `x.y.z` in its output. */
async function toolVersion(path: string, env: Env): Promise<string | undefined> {
  try {
    const output = await new Deno.Command(path, {
      args: ["--version"],
      env: definedEnv(env),
      clearEnv: true,
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!output.success) return undefined;
    return new TextDecoder().decode(output.stdout).match(/(\d+\.\d+(?:\.\d+)?)/)?.[1];
  } catch {
    return undefined;
  }
}

function definedEnv(env: Env): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) result[key] = value;
  return result;
}

/** Where clang-sys (used by bindgen in boring-sys) looks for libclang on Linux. */
const LIBCLANG_DIRS_LINUX = [
  "/usr/local/llvm*/lib*",
  "/usr/local/lib*/*/*",
  "/usr/local/lib*/*",
  "/usr/local/lib*",
  "/usr/lib*/*/*",
  "/usr/lib*/*",
  "/usr/lib*",
];

/** Where clang-sys looks for libclang on macOS. */
const LIBCLANG_DIRS_MACOS = [
  "/usr/local/opt/llvm*/lib/llvm*/lib",
  "/Library/Developer/CommandLineTools/usr/lib",
  "/Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/lib",
  "/usr/local/opt/llvm*/lib",
  "/opt/homebrew/opt/llvm*/lib",
];

/** Expands `*` in directory patterns (one path segment at a time). */
function expandDirPattern(pattern: string): string[] {
  let current = ["/"];
  for (const segment of pattern.split("/").filter((s) => s !== "")) {
    const next: string[] = [];
    if (!segment.includes("*")) {
      for (const dir of current) if (isDirSync(join(dir, segment))) next.push(join(dir, segment));
    } else {
      const regex = new RegExp(
        "^" + segment.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*") + "$",
      );
      for (const dir of current) {
        try {
          for (const entry of Deno.readDirSync(dir)) {
            if (!regex.test(entry.name)) continue;
            const path = join(dir, entry.name);
            if (entry.isDirectory || (entry.isSymlink && isDirSync(path))) next.push(path);
          }
        } catch {
          // Unreadable directory: clang-sys skips it too.
        }
      }
    }
    current = next;
  }
  return current;
}

function libclangIn(dir: string): string | undefined {
  const pattern = Deno.build.os === "darwin"
    ? /^libclang\.dylib$/
    : /^libclang(-[0-9][^/]*)?\.so(\.[0-9.]+)?$/;
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (pattern.test(entry.name)) return join(dir, entry.name);
    }
  } catch {
    // Not a readable directory.
  }
  return undefined;
}

/**
 * Finds the libclang shared library that bindgen (run by boring-sys's build
 * script) loads, searching like clang-sys does: `$LIBCLANG_PATH`,
 * `llvm-config --libdir`, `$LD_LIBRARY_PATH`, then the usual system folders.
 */
export async function findLibclang(env: Env): Promise<string | undefined> {
  const fromEnv = env.LIBCLANG_PATH;
  if (fromEnv) {
    if (isFileSync(fromEnv)) return fromEnv;
    const found = libclangIn(fromEnv);
    if (found) return found;
  }
  const llvmConfig = findExecutable(env.LLVM_CONFIG_PATH ?? "llvm-config", env);
  if (llvmConfig) {
    try {
      const output = await new Deno.Command(llvmConfig, {
        args: ["--libdir"],
        env: definedEnv(env),
        clearEnv: true,
        stdout: "piped",
        stderr: "null",
      }).output();
      const libdir = new TextDecoder().decode(output.stdout).trim();
      const found = output.success && libdir ? libclangIn(libdir) : undefined;
      if (found) return found;
    } catch {
      // Fall through to the other places.
    }
  }
  for (const dir of (env.LD_LIBRARY_PATH ?? "").split(":").filter((d) => d !== "")) {
    const found = libclangIn(dir);
    if (found) return found;
  }
  const patterns = Deno.build.os === "darwin" ? LIBCLANG_DIRS_MACOS : LIBCLANG_DIRS_LINUX;
  for (const pattern of patterns) {
    for (const dir of expandDirPattern(pattern)) {
      const found = libclangIn(dir);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * Checks what the build needs, without changing anything. Verified against
 * boring-sys 5.2.0's build script and the BoringSSL it vendors:
 * - Rust (cargo, rustc >= {@link MIN_RUST_VERSION});
 * - cmake >= {@link MIN_CMAKE_VERSION}, plus `make` (cmake's default generator)
 *   or `ninja` when `CMAKE_GENERATOR` asks for Ninja;
 * - a C and a C++ compiler (`$CC`/`$CXX` when set);
 * - git: boring-sys runs `git init` and `git apply` to patch BoringSSL;
 * - libclang: boring-sys generates its Rust bindings with bindgen at build time.
 * Go and Perl are not needed: BoringSSL ships pre-generated assembly, and Go is
 * only used for FIPS builds and BoringSSL's own tests.
 */
export async function checkPrerequisites(env: Env): Promise<PrerequisiteReport> {
  const found: string[] = [];
  const missing: MissingPrerequisite[] = [];
  const rustup = "install Rust with rustup: `curl --proto '=https' --tlsv1.2 -sSf " +
    "https://sh.rustup.rs | sh`, then `. ~/.cargo/env` (Debian's own cargo package is " +
    `usually older than ${MIN_RUST_VERSION})`;

  const cargo = findExecutable("cargo", env);
  const rustc = findExecutable(env.RUSTC ?? "rustc", env);
  if (!cargo) {
    missing.push({ name: "cargo", problem: "not found on PATH", fix: rustup });
  }
  if (cargo) found.push("cargo");
  if (!rustc) {
    // Without cargo, the cargo entry already says to install Rust.
    if (cargo) missing.push({ name: "rustc", problem: "not found on PATH", fix: rustup });
  } else {
    const version = await toolVersion(rustc, env);
    if (version && compareVersions(version, MIN_RUST_VERSION) < 0) {
      missing.push({
        name: "rustc",
        problem: `version ${version} is too old; quiche ${QUICHE_VERSION} needs ` +
          `${MIN_RUST_VERSION} or newer`,
        fix: "`rustup update stable`",
      });
    } else found.push(`rustc ${version ?? "(unknown version)"}`);
  }

  const cmake = findExecutable("cmake", env);
  if (!cmake) {
    missing.push({
      name: "cmake",
      problem: "not found on PATH (boring-sys builds BoringSSL with it)",
      fix: "`sudo apt-get install cmake`",
    });
  } else {
    const version = await toolVersion(cmake, env);
    if (version && compareVersions(version, MIN_CMAKE_VERSION) < 0) {
      missing.push({
        name: "cmake",
        problem: `version ${version} is too old; BoringSSL needs ${MIN_CMAKE_VERSION} or newer`,
        fix: "a newer cmake from your distribution's backports, or `pip install cmake`",
      });
    } else found.push(`cmake ${version ?? "(unknown version)"}`);
  }

  const generator = env.CMAKE_GENERATOR ?? "";
  if (generator.includes("Ninja")) {
    if (findExecutable("ninja", env)) found.push("ninja");
    else {
      missing.push({
        name: "ninja",
        problem: `CMAKE_GENERATOR=${generator} but ninja is not on PATH`,
        fix: "`sudo apt-get install ninja-build`, or unset CMAKE_GENERATOR to use make",
      });
    }
  } else if (Deno.build.os !== "windows") {
    if (findExecutable("make", env)) found.push("make");
    else {
      missing.push({
        name: "make",
        problem: "not found on PATH (cmake's default generator is Unix Makefiles)",
        fix: "`sudo apt-get install build-essential` (or `make`)",
      });
    }
  }

  const compilers: Array<[string, string | undefined, string[]]> = [
    ["C compiler", env.CC, ["cc", "gcc", "clang"]],
    ["C++ compiler", env.CXX, ["c++", "g++", "clang++"]],
  ];
  for (const [label, fromEnv, names] of compilers) {
    const requested = fromEnv?.trim().split(/\s+/)[0];
    const path = requested
      ? findExecutable(requested, env)
      : names.map((n) => findExecutable(n, env)).find((p) => p !== undefined);
    if (path) found.push(path.replace(/^.*[/\\]/, ""));
    else {
      missing.push({
        name: label,
        problem: requested
          ? `${requested} (from $${label.startsWith("C++") ? "CXX" : "CC"}) not found`
          : `none of ${names.join(", ")} found on PATH (BoringSSL is C and C++)`,
        fix: "`sudo apt-get install build-essential`",
      });
    }
  }

  if (findExecutable("git", env)) found.push("git");
  else {
    missing.push({
      name: "git",
      problem: "not found on PATH (boring-sys applies its BoringSSL patches with git)",
      fix: "`sudo apt-get install git`",
    });
  }

  const libclang = await findLibclang(env);
  if (libclang) found.push(`libclang (${libclang})`);
  else {
    missing.push({
      name: "libclang",
      problem: "not found (boring-sys generates its bindings with bindgen, which loads libclang)",
      fix: "`sudo apt-get install libclang-dev`, or set LIBCLANG_PATH to the folder " +
        "holding libclang.so",
    });
  }

  return { found, missing };
}

/** Formats missing prerequisites as one message, one line each. */
export function formatMissing(missing: MissingPrerequisite[]): string {
  const lines = missing.map((m) => `  - ${m.name}: ${m.problem}\n    fix: ${m.fix}`);
  return `cannot build libquiche ${QUICHE_VERSION}, missing prerequisites:\n${lines.join("\n")}`;
}

// ---------------------------------------------------------------------------
// Running cargo with its output in the log file

/** Output of the last lines of a command, for error messages and heartbeats. */
class LogTail {
  lines: string[] = [];
  errors: string[] = [];
  last = "";
  lastAt = Date.now();
  /** boring-sys's build script (cmake build of BoringSSL) has started, its dependent not. */
  buildingBoringssl = false;
  constructor(private readonly keep = 80) {}

  add(line: string): void {
    const trimmed = line.trimEnd();
    if (trimmed === "") return;
    this.last = trimmed.trimStart();
    this.lastAt = Date.now();
    if (/Compiling boring-sys /.test(trimmed)) this.buildingBoringssl = true;
    else if (/Compiling boring v|^error/.test(this.last)) this.buildingBoringssl = false;
    this.lines.push(trimmed);
    if (this.lines.length > this.keep) this.lines.shift();
    if (
      /^\s*error\b|panicked at|Unable to find|CMake Error|fatal error/.test(trimmed) &&
      this.errors.length < 15 && !this.errors.includes(trimmed)
    ) this.errors.push(trimmed);
  }
}

/** Serializes writes of several streams into one log file. */
class LogFile {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly encoder = new TextEncoder();
  constructor(private readonly file: Deno.FsFile) {}

  write(text: string): void {
    const bytes = this.encoder.encode(text);
    this.queue = this.queue.then(async () => {
      let written = 0;
      while (written < bytes.length) written += await this.file.write(bytes.subarray(written));
    });
  }

  async close(): Promise<void> {
    await this.queue;
    this.file.close();
  }
}

async function pump(
  stream: ReadableStream<Uint8Array>,
  log: LogFile,
  tail: LogTail,
): Promise<void> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    log.write(text);
    pending += text;
    const parts = pending.split(/\r?\n|\r/);
    pending = parts.pop() ?? "";
    for (const line of parts) tail.add(line);
  }
  if (pending) tail.add(pending);
}

/** Options of {@link runLogged}. */
interface RunOptions {
  cwd: string;
  env: Env;
  log: LogFile;
  progress: (line: string) => void;
  heartbeatMs: number;
  /** Captures stdout instead of logging it. */
  captureStdout?: boolean;
}

/**
 * Runs a command with its output appended to the log, printing the last line
 * every `heartbeatMs`. Throws a {@link SetupError} with the tail on failure.
 */
async function runLogged(
  command: string,
  args: string[],
  options: RunOptions,
): Promise<string> {
  const display = `${command.replace(/^.*[/\\]/, "")} ${args.join(" ")}`;
  options.log.write(`\n$ ${display}\n  (in ${options.cwd})\n`);
  const tail = new LogTail();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env: definedEnv(options.env),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new SetupError(`cannot start \`${display}\`: ${(error as Error).message}`);
  }
  const started = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    let status = tail.last ? `, last output: ${tail.last.slice(0, 100)}` : "";
    if (tail.last && now - tail.lastAt >= options.heartbeatMs) {
      status += ` (${formatDuration(now - tail.lastAt)} ago`;
      status += tail.buildingBoringssl ? "; boring-sys is building BoringSSL with cmake)" : ")";
    }
    options.progress(`  ... ${formatDuration(now - started)} elapsed${status}`);
  }, options.heartbeatMs);
  let stdout = "";
  try {
    const stdoutDone = options.captureStdout
      ? new Response(child.stdout).text().then((text) => {
        stdout = text;
      })
      : pump(child.stdout, options.log, tail);
    const [status] = await Promise.all([
      child.status,
      stdoutDone,
      pump(child.stderr, options.log, tail),
    ]);
    if (!status.success) {
      const sections = [`\`${display}\` failed with exit code ${status.code}`];
      if (tail.errors.length > 0) sections.push(`errors:\n    ${tail.errors.join("\n    ")}`);
      // Rust backtraces (RUST_BACKTRACE=1) say little here; the log has them.
      const lines = tail.lines.filter((l) => !/^\s*(\d+: \S|at \S+:\d+|stack backtrace:)/.test(l));
      sections.push(`last lines of output:\n    ${lines.slice(-25).join("\n    ")}`);
      throw new SetupError(sections.join("\n  "));
    }
  } finally {
    clearInterval(timer);
  }
  return stdout;
}

/** Formats milliseconds as `1m05s` or `3.2s`. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
}

// ---------------------------------------------------------------------------
// Build steps

/** Writes the throwaway fetch project and returns the crate's source folder. */
async function fetchCrate(paths: Layout, version: string, run: RunContext): Promise<string> {
  await Deno.mkdir(join(paths.fetchDir, "src"), { recursive: true });
  await Deno.writeTextFile(
    join(paths.fetchDir, "Cargo.toml"),
    [
      "# Generated by scripts/libquiche_build.ts: only used to download the quiche crate.",
      "[package]",
      'name = "ztna-libquiche-fetch"',
      'version = "0.0.0"',
      'edition = "2021"',
      "publish = false",
      "",
      "[dependencies]",
      `quiche = { version = "=${version}", default-features = false }`,
      "",
      "[workspace]",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(join(paths.fetchDir, "src", "lib.rs"), "");
  const manifest = join(paths.fetchDir, "Cargo.toml");
  await runLogged(run.cargo, ["fetch", "--manifest-path", manifest], run.options(paths.fetchDir));
  const json = await runLogged(
    run.cargo,
    ["metadata", "--format-version", "1", "--manifest-path", manifest],
    { ...run.options(paths.fetchDir), captureStdout: true },
  );
  let metadata: unknown;
  try {
    metadata = JSON.parse(json);
  } catch (error) {
    throw new SetupError(`cannot parse \`cargo metadata\` output: ${(error as Error).message}`);
  }
  const packages = (metadata as { packages?: unknown }).packages;
  const quiche = Array.isArray(packages)
    ? packages.find((p: unknown): p is { manifest_path: string } => {
      const record = p as Record<string, unknown>;
      return record.name === "quiche" && record.version === version &&
        typeof record.manifest_path === "string";
    })
    : undefined;
  if (!quiche) {
    throw new SetupError(
      `\`cargo metadata\` in ${paths.fetchDir} does not list quiche ${version}; see ${paths.log}`,
    );
  }
  const crateDir = dirname(quiche.manifest_path);
  if (
    !isFileSync(join(crateDir, "Cargo.lock")) || !isFileSync(join(crateDir, "include/quiche.h"))
  ) {
    throw new SetupError(
      `the downloaded quiche crate at ${crateDir} lacks Cargo.lock or include/quiche.h`,
    );
  }
  return crateDir;
}

/** Copies a directory tree (regular files and folders; symlinks are followed). */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    const info = entry.isSymlink ? await Deno.stat(source) : entry;
    if (info.isDirectory) await copyTree(source, target);
    else if (info.isFile) await Deno.copyFile(source, target);
  }
}

/** Copies a file next to its destination, then renames it into place. */
async function installFile(from: string, to: string): Promise<void> {
  await Deno.mkdir(dirname(to), { recursive: true });
  const temporary = `${to}.tmp-${Deno.pid}`;
  try {
    await Deno.copyFile(from, temporary);
    await Deno.rename(temporary, to);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw new SetupError(`cannot install ${from} as ${to}: ${(error as Error).message}`);
  }
}

interface RunContext {
  cargo: string;
  options(cwd: string): RunOptions;
}

// ---------------------------------------------------------------------------
// Entry point

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
  /** Progress sink, one line per call; default stderr. */
  progress?: (line: string) => void;
  /** Interval between heartbeat lines during long commands; default 15 s. */
  heartbeatMs?: number;
  /** Crate version to build; default {@link QUICHE_VERSION}. */
  version?: string;
}

/** What {@link setupLibquiche} did. */
export interface SetupResult {
  /** `override`: ZTNA_LIBQUICHE is used; `cached`: already built; `built`: built now. */
  status: "override" | "cached" | "built";
  /** The library that will be loaded. */
  library: string;
  /** The C header, when this setup manages it. */
  header?: string;
  /** Wall time of the call. */
  elapsedMs: number;
}

function writeStderr(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
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
  const version = options.version ?? QUICHE_VERSION;
  const progress = options.progress ?? ((line: string) => writeStderr(`[setup] ${line}`));
  const elapsed = () => Date.now() - started;

  const override = env.ZTNA_LIBQUICHE;
  if (override) {
    const path = resolve(override);
    if (!(await isFile(path))) {
      throw new SetupError(
        `ZTNA_LIBQUICHE=${override} does not exist or is not a file; point it at a ` +
          `libquiche built from quiche ${version} with --features ffi, or unset it so ` +
          "`deno task setup` builds one into .cache/libquiche/",
      );
    }
    progress(
      `ZTNA_LIBQUICHE is set: ${path} will be used (not building; its version is checked ` +
        "when ztna loads it)",
    );
    return { status: "override", library: path, elapsedMs: elapsed() };
  }

  const outDir = resolve(options.outDir ?? defaultOutDir());
  const paths = layout(outDir, version);
  if (!options.force && !options.clean) {
    const existing = await existingBuild(outDir, version);
    if (existing) {
      progress(`libquiche ${version} already built at ${existing.library} (--force rebuilds)`);
      return {
        status: "cached",
        library: existing.library,
        header: existing.header,
        elapsedMs: elapsed(),
      };
    }
  }

  progress(`building libquiche ${version} into ${outDir}`);
  const report = await checkPrerequisites(env);
  if (report.missing.length > 0) throw new SetupError(formatMissing(report.missing));
  progress(`prerequisites: ${report.found.join(", ")}`);
  const cargo = findExecutable("cargo", env);
  if (!cargo) throw new SetupError("cargo disappeared from PATH"); // checked above

  if (options.clean) {
    progress(`removing ${paths.buildDir}`);
    await Deno.remove(paths.buildDir, { recursive: true }).catch((error: Error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  await Deno.mkdir(paths.buildDir, { recursive: true });
  await Deno.remove(paths.stamp).catch(() => {});
  let file: Deno.FsFile;
  try {
    file = await Deno.open(paths.log, { write: true, create: true, truncate: true });
  } catch (error) {
    throw new SetupError(`cannot write the build log ${paths.log}: ${(error as Error).message}`);
  }
  const log = new LogFile(file);
  log.write(`libquiche ${version} build, ${new Date().toISOString()}\n`);
  const run: RunContext = {
    cargo,
    options: (cwd) => ({
      cwd,
      env,
      log,
      progress,
      heartbeatMs: options.heartbeatMs ?? 15_000,
    }),
  };
  const rel = (path: string) => relative(currentDir(), path);

  try {
    progress(`fetching quiche ${version} from crates.io (cargo fetch in ${rel(paths.fetchDir)})`);
    const crateDir = await fetchCrate(paths, version, run);

    progress(`copying crate sources from ${crateDir} to ${rel(paths.sourceDir)}`);
    await Deno.remove(paths.sourceDir, { recursive: true }).catch(() => {});
    await copyTree(crateDir, paths.sourceDir);

    const features = QUICHE_FEATURES.join(",");
    progress(
      `cargo build --release --locked --features ${features} (several minutes from scratch; ` +
        `full log: ${paths.log})`,
    );
    const buildStarted = Date.now();
    await runLogged(
      cargo,
      ["build", "--release", "--locked", "--features", features, "--target-dir", paths.targetDir],
      run.options(paths.sourceDir),
    );
    progress(`cargo build finished in ${formatDuration(Date.now() - buildStarted)}`);

    const built = join(paths.targetDir, "release", libraryFileName());
    if (!(await isFile(built))) {
      throw new SetupError(`cargo succeeded but ${built} is missing; see ${paths.log}`);
    }
    await installFile(built, paths.library);
    await installFile(join(paths.sourceDir, "include", "quiche.h"), paths.header);
    const rustc = findExecutable(env.RUSTC ?? "rustc", env);
    const stamp: Stamp = {
      version,
      features: [...QUICHE_FEATURES],
      builtAt: new Date().toISOString(),
      rustc: rustc ? `rustc ${(await toolVersion(rustc, env)) ?? "?"}` : undefined,
    };
    await Deno.writeTextFile(paths.stamp, JSON.stringify(stamp, null, 2) + "\n");
  } catch (error) {
    await log.close();
    const message = error instanceof Error ? error.message : String(error);
    throw new SetupError(`${message}\n  full log: ${paths.log}`);
  }
  await log.close();
  progress(
    `libquiche ${version} built in ${formatDuration(elapsed())}: ${paths.library}, ` +
      `${paths.header}`,
  );
  return { status: "built", library: paths.library, header: paths.header, elapsedMs: elapsed() };
}

function currentDir(): string {
  try {
    return Deno.cwd();
  } catch {
    return "/";
  }
}
