/**
 * Talks to tests/packet/scapy_oracle.py: scapy (pinned in requirements.txt) builds reference
 * packets from expressions and dissects packets we built. One python process serves a whole
 * conversation of batched requests. A missing scapy fails the calling test with the install
 * command; these tests never skip.
 */

/** One dissected layer: scapy's class name and its field values (bytes as hex). */
export interface ScapyLayer {
  layer: string;
  fields: Record<string, unknown>;
}

/** A packet scapy built: its bytes and its layers as scapy reads them back. */
export interface ScapyBuilt {
  bytes: Uint8Array;
  layers: ScapyLayer[];
}

/** A packet scapy dissected, with each checksum as received and as scapy computes it. */
export interface ScapyDissected {
  layers: ScapyLayer[];
  checksums: Record<string, { value: number; expected: number }>;
}

/** What to ask scapy: expressions to build and our packets to dissect, by name. */
export interface ScapyRequest {
  build?: Record<string, string>;
  dissect?: Record<string, Uint8Array>;
}

/** Scapy's answers, by the same names. */
export interface ScapyAnswer {
  build: Record<string, ScapyBuilt>;
  dissect: Record<string, ScapyDissected>;
}

/** Sends one request to the running oracle and returns its answer. */
export type AskScapy = (request: ScapyRequest) => Promise<ScapyAnswer>;

const ORACLE = new URL("./scapy_oracle.py", import.meta.url).pathname;
const INSTALL_HINT = "install it with `python3 -m pip install -r tests/packet/requirements.txt` " +
  "(CI installs it; these tests never skip)";

/** Hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes of hex. */
export function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

/**
 * Runs `conversation` against one python process, which is always reaped before this
 * resolves, so no test leaks it.
 */
export async function withScapy<T>(conversation: (ask: AskScapy) => Promise<T>): Promise<T> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("python3", {
      args: [ORACLE],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new Error(`cannot run python3 (${error}); the scapy oracle needs it: ${INSTALL_HINT}`);
  }
  const stderr = new Response(child.stderr).text();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const failure = async (what: string) => {
    const detail = (await stderr).trim();
    const hint = detail.includes("No module named 'scapy'")
      ? `scapy is missing: ${INSTALL_HINT}`
      : "";
    return new Error(`scapy oracle ${what}. ${hint}\n${detail}`);
  };
  const ask: AskScapy = async (request) => {
    const dissect = Object.fromEntries(
      Object.entries(request.dissect ?? {}).map(([name, bytes]) => [name, toHex(bytes)]),
    );
    const line = JSON.stringify({ build: request.build ?? {}, dissect }) + "\n";
    try {
      await writer.write(new TextEncoder().encode(line));
    } catch {
      throw await failure("stopped taking requests");
    }
    while (!buffered.includes("\n")) {
      const chunk = await lines.read();
      if (chunk.done) throw await failure("exited without answering");
      buffered += chunk.value;
    }
    const at = buffered.indexOf("\n");
    const raw = JSON.parse(buffered.slice(0, at)) as {
      build: Record<string, { hex: string; layers: ScapyLayer[] }>;
      dissect: Record<string, ScapyDissected>;
    };
    buffered = buffered.slice(at + 1);
    const build = Object.fromEntries(
      Object.entries(raw.build).map((
        [name, built],
      ) => [name, { bytes: fromHex(built.hex), layers: built.layers }]),
    );
    return { build, dissect: raw.dissect };
  };
  try {
    return await conversation(ask);
  } finally {
    await writer.close().catch(() => {});
    await lines.cancel().catch(() => {});
    await child.status;
    await stderr;
  }
}

/** Asks scapy one request with a process of its own. */
export function askScapy(request: ScapyRequest): Promise<ScapyAnswer> {
  return withScapy((ask) => ask(request));
}

/** The fields of the first layer of class `name`; throws naming the layers present otherwise. */
export function layer(packet: { layers: ScapyLayer[] }, name: string): Record<string, unknown> {
  const found = packet.layers.find((l) => l.layer === name);
  if (!found) {
    throw new Error(
      `scapy found no ${name} layer; it found ${packet.layers.map((l) => l.layer).join("/")}`,
    );
  }
  return found.fields;
}

/** The checksums scapy disagrees with, e.g. ["1:UDP got 0x1 want 0x2"]; empty when all agree. */
export function badChecksums(packet: ScapyDissected): string[] {
  return Object.entries(packet.checksums)
    .filter(([, c]) => c.value !== c.expected)
    .map(([name, c]) => `${name} got 0x${c.value.toString(16)} want 0x${c.expected.toString(16)}`);
}
