/**
 * Runs cargo with its output in the build log, a heartbeat line while it works,
 * and the errors and last lines of output in the error when it fails.
 */
import type { BuildLog } from "./build_log.ts";
import { formatDuration } from "./format_duration.ts";
import { LogTail } from "./log_tail.ts";
import { SetupError } from "./setup_error.ts";
import { definedEnv, type Env } from "./tools.ts";

/** What every cargo run of one build shares. */
export interface CargoContext {
  /** Path of the cargo executable. */
  cargo: string;
  /** The complete environment of cargo. */
  env: Env;
  /** Receives cargo's output. */
  log: BuildLog;
  /** Progress sink for the heartbeat lines. */
  progress: (line: string) => void;
}

/** Interval between heartbeat lines while cargo runs. */
const HEARTBEAT_MS = 15_000;

/** Copies a stream to the log, line by line into the tail. */
async function pump(
  stream: ReadableStream<Uint8Array>,
  log: BuildLog,
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

/**
 * Prints how long cargo has run and its last output line, every
 * {@link HEARTBEAT_MS}; returns the function that stops it.
 */
function startHeartbeat(tail: LogTail, progress: (line: string) => void): () => void {
  const started = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    let status = tail.last ? `, last output: ${tail.last.slice(0, 100)}` : "";
    if (tail.last && now - tail.lastAt >= HEARTBEAT_MS) {
      status += ` (${formatDuration(now - tail.lastAt)} ago`;
      status += tail.buildingBoringssl ? "; boring-sys is building BoringSSL with cmake)" : ")";
    }
    progress(`  ... ${formatDuration(now - started)} elapsed${status}`);
  }, HEARTBEAT_MS);
  return () => clearInterval(timer);
}

/** The error message of a failed command: exit code, error lines, last lines of output. */
function failureSummary(display: string, code: number, tail: LogTail): string {
  const sections = [`\`${display}\` failed with exit code ${code}`];
  if (tail.errors.length > 0) sections.push(`errors:\n    ${tail.errors.join("\n    ")}`);
  // Rust backtraces (RUST_BACKTRACE=1) say little here; the log has them.
  const lines = tail.lines.filter((l) => !/^\s*(\d+: \S|at \S+:\d+|stack backtrace:)/.test(l));
  sections.push(`last lines of output:\n    ${lines.slice(-25).join("\n    ")}`);
  return sections.join("\n  ");
}

/**
 * Runs `cargo args` in `cwd` with its stderr (and stdout, unless `captureStdout`)
 * appended to the log. Returns the captured stdout (else ""); throws a
 * {@link SetupError} with the failure summary when cargo fails.
 */
export async function runCargo(
  context: CargoContext,
  args: string[],
  cwd: string,
  { captureStdout = false } = {},
): Promise<string> {
  const display = `cargo ${args.join(" ")}`;
  context.log.write(`\n$ ${display}\n  (in ${cwd})\n`);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(context.cargo, {
      args,
      cwd,
      env: definedEnv(context.env),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new SetupError(`cannot start \`${display}\`: ${(error as Error).message}`);
  }
  const tail = new LogTail();
  const stopHeartbeat = startHeartbeat(tail, context.progress);
  try {
    const [status, stdout] = await Promise.all([
      child.status,
      captureStdout
        ? new Response(child.stdout).text()
        : pump(child.stdout, context.log, tail).then(() => ""),
      pump(child.stderr, context.log, tail),
    ]);
    if (!status.success) throw new SetupError(failureSummary(display, status.code, tail));
    return stdout;
  } finally {
    stopHeartbeat();
  }
}
