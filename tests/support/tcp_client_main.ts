/**
 * The kernel-TCP side of the lib/tcp namespace tests, run in the namespace:
 * `deno run -A tcp_client_main.ts MODE HOST PORT [ARGS]` prints one JSON line.
 * - `transfer HOST PORT BYTES`: sends BYTES pseudo-random bytes while reading the echo;
 *   prints `{ sentSha, receivedSha, received, ms }`.
 * - `concurrent HOST PORT COUNT BYTES`: COUNT transfers at once, different data each;
 *   prints `{ ok, failures, ms }`.
 * - `close HOST PORT`: sends `hello`, half-closes, reads the echo to EOF, closes; prints
 *   `{ echo, localPort }`.
 * - `server-close HOST PORT`: sends `QUIT`, reads to EOF (the server closes first), closes;
 *   prints `{ echo, localPort }`.
 * - `reset HOST PORT`: sends 64 KiB, lets the echo arrive unread, then closes, which makes
 *   the kernel send a RST; prints `{ localPort }`.
 */
import { createHash } from "node:crypto";
import { pseudoRandomBytes } from "./bytes.ts";
import { writeAll } from "./tcp_io.ts";

const [mode, hostname, portText, ...rest] = Deno.args;
const port = Number(portText);

/** Sends `data` and reads the echo concurrently; hashes both. */
async function transfer(data: Uint8Array) {
  const started = performance.now();
  const conn = await Deno.connect({ hostname, port });
  try {
    const sending = (async () => {
      for (let at = 0; at < data.length; at += 256 * 1024) {
        await writeAll(conn, data.subarray(at, at + 256 * 1024));
      }
      await conn.closeWrite();
    })();
    const hash = createHash("sha256");
    let received = 0;
    const buffer = new Uint8Array(256 * 1024);
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      hash.update(buffer.subarray(0, n));
      received += n;
    }
    await sending;
    return {
      sentSha: createHash("sha256").update(data).digest("hex"),
      receivedSha: hash.digest("hex"),
      received,
      ms: performance.now() - started,
    };
  } finally {
    conn.close();
  }
}

/** Sends `text`, half-closes, and reads everything until the server's FIN. */
async function exchange(text: string) {
  const conn = await Deno.connect({ hostname, port });
  const localPort = (conn.localAddr as Deno.NetAddr).port;
  await writeAll(conn, new TextEncoder().encode(text));
  if (text !== "QUIT") await conn.closeWrite();
  let echo = "";
  const buffer = new Uint8Array(1024);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
    echo += new TextDecoder().decode(buffer.subarray(0, n));
  }
  conn.close();
  return { echo, localPort };
}

let result: unknown;
if (mode === "transfer") {
  result = await transfer(pseudoRandomBytes(Number(rest[0]), 7));
} else if (mode === "concurrent") {
  const [count, bytes] = rest.map(Number);
  const started = performance.now();
  const outcomes = await Promise.allSettled(
    Array.from({ length: count }, (_, i) => transfer(pseudoRandomBytes(bytes, i + 1))),
  );
  const failures = outcomes.flatMap((outcome, i) => {
    if (outcome.status === "rejected") return [`#${i}: ${outcome.reason}`];
    const { sentSha, receivedSha, received } = outcome.value;
    return sentSha === receivedSha ? [] : [`#${i}: got ${received} bytes, sha mismatch`];
  });
  result = { ok: count - failures.length, failures, ms: performance.now() - started };
} else if (mode === "close") {
  result = await exchange("hello");
} else if (mode === "server-close") {
  result = await exchange("QUIT");
} else if (mode === "reset") {
  const conn = await Deno.connect({ hostname, port });
  const localPort = (conn.localAddr as Deno.NetAddr).port;
  await writeAll(conn, new Uint8Array(64 * 1024));
  await new Promise((resolve) => setTimeout(resolve, 500));
  conn.close(); // unread echo in the receive queue: the kernel resets instead of a FIN
  result = { localPort };
} else {
  throw new Error(`unknown mode "${mode}"`);
}
console.log(JSON.stringify(result));
