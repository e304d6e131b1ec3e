/** Test helpers for Prometheus metrics: scraping, parsing, promtool, daemons' log lines. */
import assert from "node:assert/strict";

/**
 * Parses the text exposition into `name{a="x",b="y"}` (labels sorted) → value.
 * Comment lines are skipped; a repeated series fails the assertion.
 */
export function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels = match[2] ? [...match[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)] : [];
    const key = labels.length === 0
      ? match[1]
      : `${match[1]}{${labels.map((l) => `${l[1]}="${l[2]}"`).sort().join(",")}}`;
    assert.ok(!out.has(key), `series ${key} twice`);
    out.set(key, Number(match[3]));
  }
  return out;
}

/** GETs `url` and returns its body; asserts status 200 and Prometheus' text content type. */
export async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  const body = await response.text();
  assert.equal(response.status, 200, body);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return body;
}

/** Runs `promtool check metrics` on `text`: its exit status and what it said. */
export async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, output: decode(stdout) + decode(stderr) };
}

/** A daemon process whose stderr is collected as it comes. */
export class Daemon {
  readonly child: Deno.ChildProcess;
  stderr = "";
  stdout = "";
  readonly #pumps: Promise<void>[];

  constructor(command: string, args: string[]) {
    this.child = new Deno.Command(command, {
      args,
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>, into: "stderr" | "stdout") => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this[into] += text;
    };
    this.#pumps = [pump(this.child.stderr, "stderr"), pump(this.child.stdout, "stdout")];
  }

  /** Waits until stderr matches `pattern` (or the process exits); returns the match. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = performance.now() + timeoutMs;
    let exited = false;
    this.child.status.then(() => exited = true);
    for (;;) {
      const match = pattern.exec(this.stderr);
      if (match) return match;
      if (exited || performance.now() > deadline) {
        throw new Error(`no ${pattern} on stderr (exited: ${exited}):\n${this.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Stops the process with SIGTERM and waits for it and its output. */
  async stop(): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    const status = await this.child.status;
    await Promise.all(this.#pumps);
    return status;
  }
}
