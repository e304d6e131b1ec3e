/** Child processes read line by line and always reaped: the processes a topology runs. */
import { LineLog } from "./line_log.ts";

/** What becomes of a child's stderr. */
export type StderrMode =
  /** Shared with this process (so failures show in test output). */
  | "inherit"
  /** Read continuously into the child's {@link LineLog}. */
  | "capture";

/** Options of {@link spawnChild}. */
export interface SpawnOptions {
  /** Default `inherit`. */
  stderr?: StderrMode;
}

/** A running child whose stdout is read as lines. */
export interface Child {
  process: Deno.ChildProcess;
  /** Its stderr lines when started with `stderr: "capture"`, else null. */
  stderr: LineLog | null;
  /** The next stdout line; rejects after `timeoutMs` or when stdout ends. */
  nextLine(timeoutMs?: number): Promise<string>;
  /** Sends SIGTERM (if still running) and waits for the exit status. */
  stop(): Promise<Deno.CommandStatus>;
}

/** Starts `command args` with piped stdout (and stderr as `options.stderr` says). */
export function spawnChild(command: string, args: string[], options: SpawnOptions = {}): Child {
  const capture = options.stderr === "capture";
  const process = new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: capture ? "piped" : "inherit",
  }).spawn();
  const stderr = capture ? new LineLog(process.stderr, `${command} stderr`) : null;
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let exited = false;
  const status = process.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    process,
    stderr,
    async nextLine(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!buffered.includes("\n")) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new Error(`${command}: no output line within ${timeoutMs} ms`);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${command}: no output line in time`)),
            remaining,
          );
        });
        try {
          const chunk = await Promise.race([reader.read(), timeout]);
          if (chunk.done) throw new Error(`${command}: stdout ended (${buffered.trim()})`);
          buffered += chunk.value;
        } finally {
          clearTimeout(timer);
        }
      }
      const at = buffered.indexOf("\n");
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      return line;
    },
    async stop() {
      if (!exited) {
        try {
          process.kill("SIGTERM");
        } catch {
          // Exited between the check and the signal.
        }
      }
      const result = await status;
      await reader.cancel().catch(() => {});
      await stderr?.ended;
      return result;
    },
  };
}
