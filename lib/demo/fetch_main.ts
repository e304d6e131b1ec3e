/**
 * The demo's HTTP client, run in the agent's namespace:
 * `fetch_main.ts URL TIMEOUT_MS` fetches URL and prints one JSON line
 * `{"status":N,"bytes":N,"ms":N,"body":"..."}`. A failure prints one line on
 * stderr and exits 1.
 */
import { errorMessage } from "../cli/errors.ts";

const [url, timeout] = Deno.args;
const timeoutMs = Number(timeout);
if (url === undefined || !Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
  console.error("usage: fetch_main.ts URL TIMEOUT_MS");
  Deno.exit(2);
}
const started = performance.now();
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = new Uint8Array(await response.arrayBuffer());
  const ms = performance.now() - started;
  const text = new TextDecoder().decode(body);
  console.log(JSON.stringify({ status: response.status, bytes: body.length, ms, body: text }));
} catch (error) {
  const cause = (error as { cause?: unknown }).cause;
  const detail = cause === undefined ? "" : ` (${errorMessage(cause)})`;
  console.error(
    `GET ${url} failed after ${Math.round(performance.now() - started)} ms: ` +
      `${errorMessage(error)}${detail}`,
  );
  Deno.exit(1);
}
