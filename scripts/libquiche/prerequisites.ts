/** Checks, before anything is written, that the tools the build needs are installed. */
import { basename } from "node:path";
import { findLibclang } from "./libclang.ts";
import { compareVersions, type Env, findExecutable, toolVersion } from "./tools.ts";
import { MIN_CMAKE_VERSION, MIN_RUST_VERSION, QUICHE_VERSION } from "./version.ts";

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

const RUSTUP_FIX = "install Rust with rustup: `curl --proto '=https' --tlsv1.2 -sSf " +
  "https://sh.rustup.rs | sh`, then `. ~/.cargo/env` (Debian's own cargo package is " +
  `usually older than ${MIN_RUST_VERSION})`;

/** A tool that must be new enough, when it is installed at all. */
interface VersionRequirement {
  name: string;
  path: string;
  minimum: string;
  /** Who needs `minimum`, for the message. */
  neededBy: string;
  fix: string;
}

/** Checks a tool's version; adds it to `found` or an entry to `missing`. */
async function checkVersion(
  tool: VersionRequirement,
  env: Env,
  report: PrerequisiteReport,
): Promise<void> {
  const version = await toolVersion(tool.path, env);
  if (version && compareVersions(version, tool.minimum) < 0) {
    report.missing.push({
      name: tool.name,
      problem: `version ${version} is too old; ${tool.neededBy} needs ${tool.minimum} or newer`,
      fix: tool.fix,
    });
  } else report.found.push(`${tool.name} ${version ?? "(unknown version)"}`);
}

/** Adds `name` to `found` when it is on PATH, else `missing` (with `problem` and `fix`). */
function checkPresent(
  name: string,
  missing: Omit<MissingPrerequisite, "name">,
  env: Env,
  report: PrerequisiteReport,
): void {
  if (findExecutable(name, env)) report.found.push(name);
  else report.missing.push({ name, ...missing });
}

/** Checks that a C (or C++) compiler is found: `$CC`/`$CXX` when set, else a usual name. */
function checkCompiler(
  label: string,
  variable: "CC" | "CXX",
  names: string[],
  env: Env,
  report: PrerequisiteReport,
): void {
  const requested = env[variable]?.trim().split(/\s+/)[0];
  const path = requested
    ? findExecutable(requested, env)
    : names.map((n) => findExecutable(n, env)).find((p) => p !== undefined);
  if (path) report.found.push(basename(path));
  else {
    report.missing.push({
      name: label,
      problem: requested
        ? `${requested} (from $${variable}) not found`
        : `none of ${names.join(", ")} found on PATH (BoringSSL is C and C++)`,
      fix: "`sudo apt-get install build-essential`",
    });
  }
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
  const report: PrerequisiteReport = { found: [], missing: [] };

  const cargo = findExecutable("cargo", env);
  if (cargo) report.found.push("cargo");
  else report.missing.push({ name: "cargo", problem: "not found on PATH", fix: RUSTUP_FIX });
  const rustc = findExecutable(env.RUSTC ?? "rustc", env);
  if (rustc) {
    await checkVersion(
      {
        name: "rustc",
        path: rustc,
        minimum: MIN_RUST_VERSION,
        neededBy: `quiche ${QUICHE_VERSION}`,
        fix: "`rustup update stable`",
      },
      env,
      report,
    );
  } else if (cargo) {
    // Without cargo, the cargo entry already says to install Rust.
    report.missing.push({ name: "rustc", problem: "not found on PATH", fix: RUSTUP_FIX });
  }

  const cmake = findExecutable("cmake", env);
  if (cmake) {
    await checkVersion(
      {
        name: "cmake",
        path: cmake,
        minimum: MIN_CMAKE_VERSION,
        neededBy: "BoringSSL",
        fix: "a newer cmake from your distribution's backports, or `pip install cmake`",
      },
      env,
      report,
    );
  } else {
    report.missing.push({
      name: "cmake",
      problem: "not found on PATH (boring-sys builds BoringSSL with it)",
      fix: "`sudo apt-get install cmake`",
    });
  }

  const generator = env.CMAKE_GENERATOR ?? "";
  if (generator.includes("Ninja")) {
    checkPresent(
      "ninja",
      {
        problem: `CMAKE_GENERATOR=${generator} but ninja is not on PATH`,
        fix: "`sudo apt-get install ninja-build`, or unset CMAKE_GENERATOR to use make",
      },
      env,
      report,
    );
  } else if (Deno.build.os !== "windows") {
    checkPresent(
      "make",
      {
        problem: "not found on PATH (cmake's default generator is Unix Makefiles)",
        fix: "`sudo apt-get install build-essential` (or `make`)",
      },
      env,
      report,
    );
  }

  checkCompiler("C compiler", "CC", ["cc", "gcc", "clang"], env, report);
  checkCompiler("C++ compiler", "CXX", ["c++", "g++", "clang++"], env, report);

  checkPresent(
    "git",
    {
      problem: "not found on PATH (boring-sys applies its BoringSSL patches with git)",
      fix: "`sudo apt-get install git`",
    },
    env,
    report,
  );

  const libclang = await findLibclang(env);
  if (libclang) report.found.push(`libclang (${libclang})`);
  else {
    report.missing.push({
      name: "libclang",
      problem: "not found (boring-sys generates its bindings with bindgen, which loads libclang)",
      fix: "`sudo apt-get install libclang-dev`, or set LIBCLANG_PATH to the folder " +
        "holding libclang.so",
    });
  }

  return report;
}

/** Formats missing prerequisites as one message, one line each. */
export function formatMissing(missing: MissingPrerequisite[]): string {
  const lines = missing.map((m) => `  - ${m.name}: ${m.problem}\n    fix: ${m.fix}`);
  return `cannot build libquiche ${QUICHE_VERSION}, missing prerequisites:\n${lines.join("\n")}`;
}
