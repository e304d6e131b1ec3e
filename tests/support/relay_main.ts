/**
 * A relay in its own process for namespace tests:
 * `relay_main.ts HOST PORT CERT KEY CA [ALT_IP ALT_PORT]` prints `READY <port>`
 * and relays (answering STUN on its port, and on the alternate address and
 * port when given) until SIGTERM, then prints its counters as JSON and exits
 * 0. On SIGUSR1 it prints one JSON line `{"stats": ..., "sessions": [...]}`
 * with its counters and every live session's forwarding counters.
 */
import { Relay } from "../../lib/relay/relay.ts";
import { StunServer } from "../../lib/relay/stun_server.ts";

const [hostname, port, certificateFile, privateKeyFile, caFile, altIp, altPort] = Deno.args;
const relay = Relay.start({
  listen: { hostname, port: Number(port) },
  certificateFile,
  privateKeyFile,
  caFile,
});
const stun = StunServer.start({
  endpoint: relay.endpoint,
  alternateIp: altIp,
  alternatePort: altPort === undefined ? undefined : Number(altPort),
});
console.log(`READY ${relay.address.port}`);
Deno.addSignalListener("SIGUSR1", () => {
  console.log(JSON.stringify({ stats: relay.stats, sessions: relay.sessionSnapshots() }));
});
Deno.addSignalListener("SIGTERM", async () => {
  const stats = relay.stats;
  await stun.close();
  await relay.close();
  console.log(JSON.stringify(stats));
  Deno.exit(0);
});
