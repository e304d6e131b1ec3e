/**
 * Tests of `deno task setup` (scripts/setup.ts, scripts/libquiche/) that
 * never build: each works in its own temporary folder laid out like the repo's
 * `.cache/libquiche/`, never in the real cache.
 */
import assert from "node:assert/strict";
import { formatDuration } from "../scripts/libquiche/format_duration.ts";
import { existingBuild } from "../scripts/libquiche/install.ts";
import { layout, libraryFileName, REPO_ROOT } from "../scripts/libquiche/layout.ts";
import { setupLibquiche } from "../scripts/libquiche/mod.ts";
import { checkPrerequisites } from "../scripts/libquiche/prerequisites.ts";
import { SetupError } from "../scripts/libquiche/setup_error.ts";
import { compareVersions, findExecutable } from "../scripts/libquiche/tools.ts";
import { QUICHE_VERSION } from "../scripts/libquiche/version.ts";

const SETUP_SCRIPT = `${REPO_ROOT}/scripts/setup.ts`;

/** Creates a temporary repo-root-like folder; returns its `.cache/libquiche`. */
async function tempOutDir(): Promise<{ root: string; outDir: string }> {
  const root = await Deno.makeTempDir({ prefix: "ztna_setup_test_" });
  return { root, outDir: `${root}/.cache/libquiche` };
}

/** Writes what a finished build leaves behind (with a fake library). */
async function fakeBuild(outDir: string, version = QUICHE_VERSION): Promise<void> {
  const paths = layout(outDir, version);
  await Deno.mkdir(`${outDir}/include`, { recursive: true });
  await Deno.writeFile(paths.library, new Uint8Array([0x7f, 0x45, 0x4c, 0x46]));
  await Deno.writeTextFile(paths.header, "/* quiche.h */\n");
  await Deno.writeTextFile(
    paths.stamp,
    JSON.stringify({ version, features: ["ffi"], builtAt: new Date().toISOString() }),
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The process environment without ZTNA_LIBQUICHE. */
function envWithoutOverride(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.ZTNA_LIBQUICHE;
  return env;
}

/** Runs scripts/setup.ts like `deno task setup` does. */
async function runSetupCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stderr: string; ms: number }> {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      SETUP_SCRIPT,
      ...args,
    ],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stderr: new TextDecoder().decode(output.stderr),
    ms: performance.now() - started,
  };
}

Deno.test("setup: an existing build of the pinned version is reported without building", async () => {
  const { root, outDir } = await tempOutDir();
  try {
    await fakeBuild(outDir);
    const lines: string[] = [];
    const started = performance.now();
    // An empty PATH: the fast path must not need cargo or any other tool.
    const result = await setupLibquiche({
      outDir,
      env: { PATH: "" },
      progress: (line) => lines.push(line),
    });
    const ms = performance.now() - started;
    assert.equal(result.status, "cached");
    assert.equal(result.library, `${outDir}/${libraryFileName()}`);
    assert.equal(result.header, `${outDir}/include/quiche.h`);
    assert.ok(ms < 1000, `fast path took ${ms} ms`);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      new RegExp(`^libquiche ${QUICHE_VERSION} already built at ${outDir}/${libraryFileName()}`),
    );
    assert.equal(await exists(`${outDir}/build`), false, "nothing was built");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("setup: the CLI takes the fast path and exits 0", async () => {
  const { root, outDir } = await tempOutDir();
  try {
    await fakeBuild(outDir);
    const { code, stderr, ms } = await runSetupCli(["--out-dir", outDir], envWithoutOverride());
    assert.equal(code, 0, stderr);
    assert.match(stderr, new RegExp(`libquiche ${QUICHE_VERSION} already built at ${outDir}/`));
    assert.ok(ms < 10_000, `CLI fast path took ${ms} ms`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("setup: a stamp of another version, or a missing file, is not a finished build", async () => {
  const { root, outDir } = await tempOutDir();
  try {
    await fakeBuild(outDir, "0.1.0");
    assert.equal(await existingBuild(outDir), undefined, "other version");
    await fakeBuild(outDir);
    assert.ok(await existingBuild(outDir), "pinned version");
    await Deno.remove(`${outDir}/include/quiche.h`);
    assert.equal(await existingBuild(outDir), undefined, "header missing");
    await fakeBuild(outDir);
    await Deno.writeTextFile(layout(outDir).stamp, "not json");
    assert.equal(await existingBuild(outDir), undefined, "corrupt stamp");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("setup: a PATH without cargo gives a clear error before anything is written", async () => {
  const { root, outDir } = await tempOutDir();
  try {
    // A bin folder with every real tool the check looks for, except cargo.
    const bin = `${root}/bin`;
    await Deno.mkdir(bin);
    const realEnv = envWithoutOverride();
    for (const tool of ["rustc", "cmake", "make", "ninja", "cc", "c++", "git", "llvm-config"]) {
      const path = findExecutable(tool, realEnv);
      if (path) await Deno.symlink(path, `${bin}/${tool}`);
    }
    const env = { ...realEnv, PATH: bin };

    const report = await checkPrerequisites(env);
    const cargo = report.missing.find((m) => m.name === "cargo");
    assert.ok(cargo, `cargo reported missing: ${JSON.stringify(report.missing)}`);
    assert.match(cargo.fix, /rustup/);
    assert.ok(!report.found.includes("cargo"));

    await assert.rejects(
      setupLibquiche({ outDir, env, progress: () => {} }),
      (error: unknown) => {
        assert.ok(error instanceof SetupError);
        assert.match(error.message, /missing prerequisites/);
        assert.match(error.message, /- cargo: not found on PATH/);
        assert.match(error.message, /sh\.rustup\.rs/);
        return true;
      },
    );
    assert.equal(await exists(outDir), false, "no build folder was created");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("setup: an empty PATH names every missing tool with a Debian fix", async () => {
  const report = await checkPrerequisites({ PATH: "" });
  const names = report.missing.map((m) => m.name);
  for (const name of ["cargo", "cmake", "make", "C compiler", "C++ compiler", "git"]) {
    assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
  }
  for (const missing of report.missing) assert.match(missing.fix, /apt-get|rustup/);
});

Deno.test("setup: ZTNA_LIBQUICHE pointing to a missing file is a clear error", async () => {
  const { root, outDir } = await tempOutDir();
  try {
    const missing = `${root}/nowhere/libquiche.so`;
    await assert.rejects(
      setupLibquiche({ outDir, env: { ZTNA_LIBQUICHE: missing }, progress: () => {} }),
      (error: unknown) => {
        assert.ok(error instanceof SetupError);
        assert.match(error.message, /ZTNA_LIBQUICHE=/);
        assert.ok(error.message.includes(missing), error.message);
        assert.match(error.message, /does not exist/);
        return true;
      },
    );
    assert.equal(await exists(outDir), false, "nothing was built");

    const { code, stderr } = await runSetupCli(["--out-dir", outDir], {
      ...envWithoutOverride(),
      ZTNA_LIBQUICHE: missing,
    });
    assert.equal(code, 1, stderr);
    assert.match(stderr, /error: ZTNA_LIBQUICHE=.* does not exist/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("setup: ZTNA_LIBQUICHE pointing to a file is used without building", async () => {
  const { root, outDir } = await tempOutDir();
  try {
    const library = `${root}/libquiche.so`;
    await Deno.writeFile(library, new Uint8Array([0x7f, 0x45, 0x4c, 0x46]));
    const lines: string[] = [];
    const result = await setupLibquiche({
      outDir,
      env: { ZTNA_LIBQUICHE: library, PATH: "" },
      progress: (line) => lines.push(line),
    });
    assert.equal(result.status, "override");
    assert.equal(result.library, library);
    assert.match(lines.join("\n"), new RegExp(`ZTNA_LIBQUICHE is set: ${library} will be used`));
    assert.equal(await exists(outDir), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("setup: the CLI rejects unknown arguments with exit code 1", async () => {
  const { code, stderr } = await runSetupCli(["--frobnicate"], envWithoutOverride());
  assert.equal(code, 1);
  assert.match(stderr, /unknown argument --frobnicate/);
});

Deno.test("setup: helpers", () => {
  assert.ok(compareVersions("1.95.0", "1.88.0") > 0);
  assert.ok(compareVersions("3.18", "3.22.0") < 0);
  assert.equal(compareVersions("3.22", "3.22.0"), 0);
  assert.equal(formatDuration(3_200), "3.2s");
  assert.equal(formatDuration(154_000), "2m34s");
  assert.equal(layout("/x/.cache/libquiche").log, "/x/.cache/libquiche/build/build.log");
  assert.equal(REPO_ROOT.endsWith("/scripts"), false);
});
