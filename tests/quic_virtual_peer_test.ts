/**
 * A QUIC connection over a virtual peer: packets for a 0.0.0.0/8 address go
 * through a transport function instead of the socket, as a session's packets
 * go through the relay. Here the transport hands them to the other endpoint.
 */
import assert from "node:assert/strict";
import { virtualAddress } from "../lib/net/address.ts";
import { QuicConfig } from "../lib/quic/config.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { Endpoint, type VirtualPeer } from "../lib/quic/endpoint.ts";
import { waitFor } from "./support/bytes.ts";
import { makeTestPki, SERVER_NAME } from "./support/certificates.ts";
import { echo } from "./support/echo.ts";
import { datagramRoundTrips, streamRoundTrip } from "./support/exchange.ts";

Deno.test("a mutual-TLS session runs over virtual peers, without retry, and counts nothing on UDP", async () => {
  const pki = await makeTestPki("virtual");
  const serverConfig = new QuicConfig({
    alpn: ["ztna-test"],
    certificateChainFile: pki.server.certPath,
    privateKeyFile: pki.server.keyPath,
    caFile: pki.caPath,
    maxSendUdpPayload: 1300,
  });
  const clientConfig = new QuicConfig({
    alpn: ["ztna-test"],
    certificateChainFile: pki.client.certPath,
    privateKeyFile: pki.client.keyPath,
    caFile: pki.caPath,
    maxSendUdpPayload: 1300,
  });
  const accepted: Connection[] = [];
  const server = Endpoint.bind({
    address: { hostname: "127.0.0.1", port: 0 },
    server: { config: serverConfig, onConnection: (c) => (accepted.push(c), echo(c)) },
  });
  const client = Endpoint.bind({ address: { hostname: "::", port: 0 } });
  let carried = 0;
  const link = (to: () => VirtualPeer) => (packet: Uint8Array) => {
    carried++;
    assert.ok(packet.length <= 1300, `packet of ${packet.length} bytes`);
    const copy = packet.slice();
    setTimeout(() => to().receive(copy), 0);
  };
  const peers: { server?: VirtualPeer; client?: VirtualPeer } = {};
  const serverSide = server.attachVirtualPeer(virtualAddress(7), link(() => peers.client!));
  const clientSide = client.attachVirtualPeer(virtualAddress(9), link(() => peers.server!));
  Object.assign(peers, { server: serverSide, client: clientSide });
  try {
    const connection = client.connect({
      peer: clientSide.address,
      serverName: SERVER_NAME,
      config: clientConfig,
    });
    await connection.established;
    await waitFor(() => accepted.length === 1, "the server to accept");
    assert.deepEqual(accepted[0].initialPeer, virtualAddress(7));
    assert.equal(server.stats.retries, 0, "no retry on a virtual path");
    assert.equal(await datagramRoundTrips(connection, 2_000, 1200), 2_000);
    const stream = await streamRoundTrip(connection, 2 << 20);
    assert.equal(stream.received, stream.sent);
    assert.equal(server.socketStats.packetsReceived, 0, "nothing went over UDP");
    assert.equal(client.socketStats.packetsSent, 0);
    assert.ok(carried > 4_000, `carried ${carried} packets`);
    connection.close(0, "done");
    assert.equal((await accepted[0].closed).reason, "done");
  } finally {
    serverSide.detach();
    clientSide.detach();
    await client.close();
    await server.close();
    serverConfig.free();
    clientConfig.free();
    await pki.cleanup();
  }
});

Deno.test("attachVirtualPeer refuses real addresses and duplicates", async () => {
  const endpoint = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  try {
    assert.throws(
      () => endpoint.attachVirtualPeer({ hostname: "127.0.0.1", port: 5 }, () => {}),
      /not a virtual address/,
    );
    const peer = endpoint.attachVirtualPeer(virtualAddress(1), () => {});
    assert.throws(
      () => endpoint.attachVirtualPeer(virtualAddress(1), () => {}),
      /already attached/,
    );
    peer.detach();
    endpoint.attachVirtualPeer(virtualAddress(1), () => {}).detach();
  } finally {
    await endpoint.close();
  }
});
