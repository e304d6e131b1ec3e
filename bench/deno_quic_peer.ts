/**
 * Receiver process for `benchDenoQuic({ processes: 2 })` (bench/deno_quic.ts): reads a
 * {@link PeerConfig} as JSON from stdin, listens on 127.0.0.1 (ephemeral port), prints
 * `{"port": N}` and a newline on stdout, serves exactly one benchmark connection (its stats go
 * back to the sender over QUIC), then exits.
 *
 * @module
 */

import { listenBench, type PeerConfig, serveOnce } from "./deno_quic.ts";

if (import.meta.main) {
  const config = JSON.parse(await new Response(Deno.stdin.readable).text()) as PeerConfig;
  const listener = listenBench(config.certificatePem, config.privateKeyPem);
  const line = JSON.stringify({ port: listener.endpoint.addr.port }) + "\n";
  const bytes = new TextEncoder().encode(line);
  for (let off = 0; off < bytes.length;) off += await Deno.stdout.write(bytes.subarray(off));
  await serveOnce(listener);
}
