/**
 * A relay in its own process for namespace tests:
 * `relay_main.ts HOST PORT CERT KEY CA` prints `READY <port>` and relays until
 * SIGTERM, then prints its counters as JSON and exits 0. On SIGUSR1 it prints
 * one JSON line `{"stats": ..., "sessions": [...]}` with its counters and every
 * live session's forwarding counters.
 */
import { Relay } from "../../lib/relay/relay.ts";

const [hostname, port, certificateFile, privateKeyFile, caFile] = Deno.args;
const relay = Relay.start({
  listen: { hostname, port: Number(port) },
  certificateFile,
  privateKeyFile,
  caFile,
});
console.log(`READY ${relay.address.port}`);
Deno.addSignalListener("SIGUSR1", () => {
  console.log(JSON.stringify({ stats: relay.stats, sessions: relay.sessionSnapshots() }));
});
Deno.addSignalListener("SIGTERM", async () => {
  const stats = relay.stats;
  await relay.close();
  console.log(JSON.stringify(stats));
  Deno.exit(0);
});
