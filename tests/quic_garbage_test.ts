/**
 * 100,000 random and mutated packets at a server endpoint: it keeps running,
 * creates no connection from them, and its live connection keeps working.
 */
import assert from "node:assert/strict";
import { QuicConfig } from "../lib/quic/config.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { UdpSocket } from "../lib/net/udp_socket.ts";
import { makeTestPki, SERVER_NAME } from "./support/certificates.ts";
import { echo } from "./support/echo.ts";
import { datagramRoundTrips, streamRoundTrip } from "./support/exchange.ts";
import { waitFor } from "./support/bytes.ts";

const ALPN = "ztna-test";
const GARBAGE_PACKETS = 100_000;

/**
 * A UDP relay between one client and a server that keeps copies of the first
 * packets the client sends, so they can be replayed mutated from the same address.
 */
function recordingProxy(server: Uint8Array) {
  const socket = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
  const recorded: Uint8Array[] = [];
  let client: Uint8Array | null = null;
  const done = socket.receive((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const peer = batch.peers[batch.buffer[i]];
      const start = batch.offsets[i];
      const packet = batch.buffers[batch.buffer[i]].subarray(start, start + batch.lengths[i]);
      const fromServer = peer.subarray(0, server.length).every((b, j) => b === server[j]);
      if (fromServer) {
        if (client) socket.sendTo(packet, client);
      } else {
        client ??= peer.slice(0, server.length);
        if (recorded.length < 500) recorded.push(packet.slice());
        socket.sendTo(packet, server);
      }
    }
    socket.flush();
  });
  return { socket, recorded, done };
}

/** Random integer in [0, n). */
const random = (n: number) => Math.floor(Math.random() * n);

/** One hostile packet of a random kind. */
function hostilePacket(recorded: Uint8Array[], serial: number): Uint8Array {
  switch (serial % 5) {
    case 0: // Random bytes, random length.
      return crypto.getRandomValues(new Uint8Array(1 + random(1400)));
    case 1: { // A real packet of the live connection with a few bytes flipped.
      const packet = recorded[random(recorded.length)].slice();
      for (let flips = 1 + random(3); flips > 0; flips--) {
        packet[1 + random(packet.length - 1)] ^= 1 + random(255);
      }
      return packet;
    }
    case 2: { // A real packet truncated or extended.
      const packet = recorded[random(recorded.length)];
      const length = Math.min(1500, random(packet.length * 2) + 1);
      const out = new Uint8Array(length);
      out.set(packet.subarray(0, Math.min(length, packet.length)));
      return out;
    }
    case 3: { // A padded Initial-looking packet: version 1, random IDs and token.
      const packet = crypto.getRandomValues(new Uint8Array(1200 + random(100)));
      packet[0] = 0xc0 | random(4);
      packet.set([0, 0, 0, 1], 1);
      packet[5] = 8 + random(13);
      return packet;
    }
    default: { // A long header with an unknown version (asks for version negotiation).
      const packet = crypto.getRandomValues(new Uint8Array(1200));
      packet[0] = 0xc0;
      packet.set([0x1a, 0x2a, 0x3a, 0x4a], 1);
      packet[5] = 8;
      packet[14] = 8;
      return packet;
    }
  }
}

Deno.test("100,000 random and mutated packets leave the server and its live connection working", async () => {
  const pki = await makeTestPki("garbage");
  const serverConfig = new QuicConfig({
    alpn: [ALPN],
    certificateChainFile: pki.server.certPath,
    privateKeyFile: pki.server.keyPath,
    caFile: pki.caPath,
  });
  const clientConfig = new QuicConfig({
    alpn: [ALPN],
    certificateChainFile: pki.client.certPath,
    privateKeyFile: pki.client.keyPath,
    caFile: pki.caPath,
  });
  const accepted: Connection[] = [];
  const server = Endpoint.bind({
    address: { hostname: "127.0.0.1", port: 0 },
    server: {
      config: serverConfig,
      onConnection: (connection) => {
        accepted.push(connection);
        echo(connection);
      },
    },
  });
  const proxy = recordingProxy(server.sockaddrFor(server.localAddress));
  const attacker = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
  const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  try {
    const connection = client.connect({
      peer: proxy.socket.localAddress,
      serverName: SERVER_NAME,
      config: clientConfig,
    });
    await connection.established;
    await waitFor(() => accepted.length === 1, "the server to accept");
    assert.equal(await datagramRoundTrips(connection, 200), 200);
    assert.ok(proxy.recorded.length >= 20, `recorded ${proxy.recorded.length} packets`);

    const target = server.sockaddrFor(server.localAddress);
    for (let sent = 0; sent < GARBAGE_PACKETS; sent++) {
      const packet = hostilePacket(proxy.recorded, sent);
      // Half from the live client's own address, half from a stranger's.
      const from = sent % 2 === 0 ? proxy.socket : attacker;
      while (!from.sendTo(packet, target)) await new Promise((r) => setTimeout(r, 1));
      if (sent % 100 === 99) {
        proxy.socket.flush();
        attacker.flush();
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    proxy.socket.flush();
    attacker.flush();
    await new Promise((r) => setTimeout(r, 200));

    const stats = server.stats;
    const received = server.socketStats.packetsReceived;
    const accounted = stats.routedToConnections + stats.unknownConnectionDropped +
      stats.malformedDropped + stats.versionNegotiations + stats.retries +
      stats.invalidTokens + stats.acceptFailures + stats.rawDelivered + stats.rawUnclaimed +
      stats.handshakesRefused + stats.nonVirtualDropped + stats.duplicateVirtualDropped;
    assert.equal(accounted, received, `every packet counted once: ${JSON.stringify(stats)}`);
    assert.ok(
      received >= GARBAGE_PACKETS * 0.9,
      `the server received ${received} packets, kernel drops hide the rest`,
    );
    assert.ok(stats.malformedDropped > 1000, "malformed headers were seen");
    assert.ok(stats.rawUnclaimed > 1000, "non-QUIC first bytes were seen and dropped");
    assert.equal(stats.rawDelivered, 0, "no handler was registered");
    assert.ok(stats.unknownConnectionDropped > 1000, "packets for unknown connections were seen");
    assert.ok(stats.versionNegotiations > 1000, "unknown versions were answered");
    assert.ok(stats.retries > 100, "token-less Initials got a retry");
    assert.ok(stats.routedToConnections > 10_000, "mutated packets reached the live connection");
    assert.equal(stats.connectionsAccepted, 1, "no connection was made from garbage");
    assert.equal(accepted.length, 1);

    // The live connection is intact.
    assert.equal(connection.isClosed, false);
    assert.equal(await datagramRoundTrips(connection, 1_000), 1_000);
    const stream = await streamRoundTrip(connection, 1 << 20);
    assert.equal(stream.received, stream.sent);
    connection.close(0, "done");
    assert.equal((await connection.closed).reason, "done");
  } finally {
    await client.close();
    await attacker.close();
    await proxy.socket.close();
    await proxy.done;
    await server.close();
    serverConfig.free();
    clientConfig.free();
    await pki.cleanup();
  }
});
