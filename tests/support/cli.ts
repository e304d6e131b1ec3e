/** The `ztna` executable as an operator runs it: `deno run main.ts` as a real process. */
import assert from "node:assert/strict";
import { type ExecResult, rootCommand } from "../../lib/netns/root_command.ts";

export type { ExecResult };

/** The entry point the `ztna` processes run. */
export const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** The repository's root folder. */
export const REPO = new URL("../..", import.meta.url).pathname;

/** How {@link ztna} runs the process. */
export interface ZtnaOptions {
  /** Working directory; by default this process's. */
  cwd?: string;
  /** Variables added to this process's environment. */
  env?: Record<string, string>;
  /** Words run before `deno`, e.g. `setpriv ... --` to run as another user. */
  prefix?: string[];
  /** `deno run` flags before `main.ts`; default `--allow-all`. */
  denoFlags?: string[];
  /** Killed after this long; default 30 s. */
  timeoutMs?: number;
}

/** Runs `[prefix...] deno run [denoFlags...] main.ts args` to completion and collects its output. */
export function ztna(args: string[], options: ZtnaOptions = {}): Promise<ExecResult> {
  const { prefix = [], denoFlags = ["--allow-all"], timeoutMs = 30_000 } = options;
  return rootCommand([...prefix, Deno.execPath(), "run", ...denoFlags, MAIN, ...args], {
    cwd: options.cwd,
    env: options.env,
    signal: AbortSignal.timeout(timeoutMs),
  });
}

/** Asserts the exit status, showing the output when it differs. */
export function assertExit(run: ExecResult, code: number): void {
  assert.equal(run.code, code, `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}
