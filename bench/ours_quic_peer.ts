/**
 * Receiver process for `benchOursQuic({ processes: 2 })`: `ours_quic_peer.ts CERT KEY`
 * prints its port, serves one benchmark connection, and exits after answering.
 *
 * @module
 */
import { serveBench } from "./ours_quic.ts";

const [certificateFile, privateKeyFile] = Deno.args;
const server = serveBench(certificateFile, privateKeyFile, () => {
  // Give the answer time to leave, then stop.
  setTimeout(async () => {
    await server.endpoint.close();
    server.config.free();
  }, 300);
});
console.log(server.endpoint.localAddress.port);
