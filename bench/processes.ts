/**
 * What the bench suites that run real `ztna` processes share: a CA issuing
 * identities into a temporary folder, child processes whose output lines can
 * be waited for, and their resident memory and CPU time from Linux /proc.
 */
import { createCa, grantNames, issueIdentity, writeIdentityFiles } from "../lib/pki/mod.ts";
import type { Identity } from "../lib/pki/mod.ts";
import { denoCommand } from "../lib/netns/deno_command.ts";
import type { NodeIdentity } from "../lib/node/configs.ts";

const MAIN = new URL("../main.ts", import.meta.url);
/** The relay's name in the bench's certificates. */
export const BENCH_RELAY_NAME = "relay.bench";
/** Clock ticks per second of /proc/PID/stat's times (USER_HZ: 100 on Linux). */
const CLOCK_TICKS = 100;

/** A CA in a temporary folder that issues the bench's identities. */
export class BenchOrg {
  private constructor(readonly dir: string, readonly ca: Identity, readonly caFile: string) {}

  /** A new CA in a new temporary folder (`prefix` names it). */
  static async create(prefix: string): Promise<BenchOrg> {
    const dir = await Deno.makeTempDir({ prefix });
    const ca = await createCa({ commonName: "ztna bench CA" });
    const { certPath } = await writeIdentityFiles(ca, dir, "ca");
    return new BenchOrg(dir, ca, certPath);
  }

  /** Issues `name` with `role` (and a connector's `services`) into `<dir>/<name>.crt|key`. */
  async issue(
    name: string,
    role: "relay" | "connector" | "agent",
    services: string[] = [],
  ): Promise<NodeIdentity> {
    const issued = await issueIdentity(this.ca, {
      commonName: name,
      ...grantNames(name, role, services, role === "relay" ? [BENCH_RELAY_NAME] : []),
    });
    const files = await writeIdentityFiles(issued, this.dir, name);
    return { certificateFile: files.certPath, privateKeyFile: files.keyPath, caFile: this.caFile };
  }

  /** The `--cert --key --ca` flags of `id`. */
  flags(id: NodeIdentity): string[] {
    return ["--cert", id.certificateFile, "--key", id.privateKeyFile, "--ca", id.caFile];
  }

  /** Removes the folder. */
  cleanup(): Promise<void> {
    return Deno.remove(this.dir, { recursive: true });
  }
}

/** A child process whose output lines are searched. */
export interface BenchProcess {
  process: Deno.ChildProcess;
  /** Resolves with the first line of stdout or stderr matching `pattern`. */
  line(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Closes stdin, sends SIGTERM and waits for the exit. */
  stop(): Promise<void>;
}

/** Starts `deno run <script> <args>` (default script: ztna's main.ts). */
export function spawnBench(args: string[], script: URL = MAIN): BenchProcess {
  const [command, ...rest] = denoCommand(script, args);
  const process = new Deno.Command(command, {
    args: rest,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  let text = "";
  const waiters = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      // Keep the tail only: the lines searched come early, logs go on.
      text = (text + chunk).slice(-65_536);
      for (const wake of waiters) wake();
    }
  };
  void pump(process.stdout);
  void pump(process.stderr);
  return {
    process,
    async line(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = text.split("\n").find((line) => pattern.test(line));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no line matching ${pattern}:\n${text}`);
        await new Promise<void>((resolve) => {
          waiters.add(resolve);
          setTimeout(resolve, 200);
        });
        waiters.clear();
      }
    },
    async stop() {
      await process.stdin.close().catch(() => {});
      try {
        process.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await process.status;
    },
  };
}

/** Resident set size of process `pid` in bytes. */
export async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** CPU time (user + system) process `pid` has used, in seconds. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
