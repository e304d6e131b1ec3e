/**
 * A QUIC echo server in its own process, for two-process tests:
 * `deno run -A echo_server_main.ts HOST CERT KEY CA ALPN` prints `READY <port>`
 * and serves (mutual TLS, echo) until SIGTERM, then prints its counters as JSON.
 */
import { QuicConfig } from "../../lib/quic/config.ts";
import { Endpoint } from "../../lib/quic/endpoint.ts";
import { echo } from "./echo.ts";

const [hostname, certificateChainFile, privateKeyFile, caFile, alpn] = Deno.args;
const config = new QuicConfig({
  alpn: [alpn],
  certificateChainFile,
  privateKeyFile,
  caFile,
  verifyPeer: true,
  datagrams: { receiveQueue: 4096, sendQueue: 4096 },
});
const endpoint = Endpoint.bind({
  address: { hostname, port: 0 },
  server: { config, onConnection: echo },
});
console.log(`READY ${endpoint.localAddress.port}`);
Deno.addSignalListener("SIGTERM", async () => {
  const stats = endpoint.stats;
  await endpoint.close();
  config.free();
  console.log(JSON.stringify(stats));
  Deno.exit(0);
});
