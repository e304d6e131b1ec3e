/** A `ztna <role>` daemon as a real process, its JSON log lines collected as they come. */
import { waitFor } from "./bytes.ts";
import { MAIN } from "./cli.ts";
import type { NodeIdentity } from "../../lib/node/configs.ts";

/** One JSON Lines log record. */
export interface LogRecord {
  level: string;
  logger: string;
  message: string;
  properties: Record<string, unknown>;
}

/** `deno run main.ts <args> --log-format json`, stdout and stderr collected. */
export class DaemonProcess {
  stdout = "";
  stderr = "";
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];
  #exited = false;

  /** `ztna relay` on a free loopback port with `identity`, its admin socket in `dir`. */
  static relay(identity: NodeIdentity, dir: string): DaemonProcess {
    return new DaemonProcess([
      "relay",
      ...["--listen", "127.0.0.1:0"],
      ...["--cert", identity.certificateFile, "--key", identity.privateKeyFile],
      ...["--ca", identity.caFile, "--admin-socket", `${dir}/relay.sock`],
    ]);
  }

  constructor(args: string[], env: Record<string, string> = {}) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--unstable-net", MAIN, ...args, "--log-format", "json"],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.status = this.#child.status;
    this.status.then(() => (this.#exited = true));
    this.#pumps = [
      this.#pump(this.#child.stdout, (text) => (this.stdout += text)),
      this.#pump(this.#child.stderr, (text) => (this.stderr += text)),
    ];
  }

  async #pump(stream: ReadableStream<Uint8Array>, append: (text: string) => void): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) append(text);
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The complete JSON log records so far (lines that are not JSON are skipped). */
  get records(): LogRecord[] {
    return this.stderr.split("\n").slice(0, -1).flatMap((line) => {
      try {
        return [JSON.parse(line) as LogRecord];
      } catch {
        return [];
      }
    });
  }

  /**
   * Waits for the `nth` (from 1) log record whose message, without the quotes
   * LogTape puts around string values, matches `pattern`; fails if the process
   * exits first.
   */
  async record(pattern: RegExp, nth = 1, timeoutMs = 15_000): Promise<LogRecord> {
    let found: LogRecord | undefined;
    await waitFor(
      () => {
        found = this.records.filter((r) => pattern.test(r.message.replaceAll('"', "")))[nth - 1];
        if (!found && this.#exited) throw new Error(`process exited:\n${this.stderr}`);
        return found !== undefined;
      },
      `log record ${nth} matching ${pattern}\n${this.stderr}`,
      timeoutMs,
    );
    return found!;
  }

  /** Sends `signal` without waiting. */
  kill(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Sends `signal` (if still running) and returns the exit code once the output is drained. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<number> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch {
        // Exited meanwhile.
      }
    }
    const { code } = await this.status;
    await Promise.all(this.#pumps);
    return code;
  }
}
