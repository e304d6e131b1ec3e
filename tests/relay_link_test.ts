/**
 * The node's relay link against a relay made by hand (a QUIC server with the
 * relay ALPN that says welcome, then answers only what the test tells it
 * to): requests carry IDs, time out, fail at once when the link is lost, and
 * unknown message types from a newer relay are skipped.
 */
import assert from "node:assert/strict";
import { MessageStream } from "../lib/control/message_stream.ts";
import { PROTOCOL_VERSION } from "../lib/control/messages.ts";
import { relayClientConfig } from "../lib/node/configs.ts";
import {
  RelayLink,
  RelayLinkLostError,
  RelayRequestError,
  RelayRequestTimeoutError,
} from "../lib/node/relay_link.ts";
import { QuicConfig } from "../lib/quic/config.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { RELAY_ALPN } from "../lib/relay/constants.ts";
import { waitFor } from "./support/bytes.ts";
import { makeTestOrg, RELAY_NAME } from "./support/nodes.ts";

Deno.test("relay link: request IDs, timeouts, failure on link loss, unknown messages skipped", async () => {
  const org = await makeTestOrg("link");
  const relayId = await org.issue("relay-1", "relay");
  const agentId = await org.issue("alice", "agent");
  const serverConfig = new QuicConfig({
    alpn: [RELAY_ALPN],
    certificateChainFile: relayId.certPath,
    privateKeyFile: relayId.keyPath,
    caFile: org.caPath,
  });
  const clientConfig = relayClientConfig({
    certificateFile: agentId.certPath,
    privateKeyFile: agentId.keyPath,
    caFile: org.caPath,
  });
  const controls: MessageStream[] = [];
  const connections: Connection[] = [];
  const relay = Endpoint.bind({
    address: { hostname: "127.0.0.1", port: 0 },
    server: {
      config: serverConfig,
      onConnection: (connection) => {
        connections.push(connection);
        connection.onStream(async (stream) => {
          const control = new MessageStream(stream);
          await control.receive();
          await control.send({
            type: "welcome",
            version: PROTOCOL_VERSION,
            node: "alice",
            observed: "192.0.2.1:1000",
          });
          controls.push(control);
        });
      },
    },
  });
  const node = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  const link = new RelayLink({
    endpoint: node,
    relay: relay.localAddress,
    serverName: RELAY_NAME,
    config: clientConfig,
    role: "agent",
    requestTimeoutMs: 300,
  });
  const peerMoves: string[] = [];
  link.onPeerMoved((session) => peerMoves.push(session));
  try {
    await link.start();
    assert.equal(link.observed, "192.0.2.1:1000");
    const control = controls[0];

    // Unanswered: a typed timeout, no answer ever matched later.
    const started = performance.now();
    await assert.rejects(link.openSession("web"), RelayRequestTimeoutError);
    const waited = performance.now() - started;
    assert.ok(waited >= 290 && waited < 2_000, `timed out after ${waited} ms`);
    const first = await control.receive();
    assert.equal(first?.type, "open-session");
    const firstId = first?.type === "open-session" ? first.id : -1;

    // Answers are matched by ID, whatever their order; unknown types are skipped.
    const a = link.openSession("web");
    const b = link.openSession("db");
    const requests = [await control.receive(), await control.receive()];
    const ids = requests.map((r) => r?.type === "open-session" ? r.id : -1);
    assert.equal(new Set([firstId, ...ids]).size, 3, "every request has its own ID");
    await control.send({
      type: "error",
      id: ids[1],
      code: "unknown-service",
      message: "no connector publishes db",
      service: "db",
    });
    // @ts-expect-error: a message type from a newer relay.
    await control.send({ type: "from-the-future", id: ids[0] });
    await control.send({ type: "peer-moved", session: "0123456789abcdef" });
    await control.send({
      type: "session",
      id: ids[0],
      session: "0123456789abcdef",
      service: "web",
      peer: "conn-1",
      side: "agent",
    });
    await assert.rejects(
      b,
      (e: Error) => e instanceof RelayRequestError && e.code === "unknown-service",
    );
    const session = await a;
    assert.equal(session.session, "0123456789abcdef");
    await waitFor(() => peerMoves.length === 1, "the peer-moved notice");
    assert.deepEqual(peerMoves, ["0123456789abcdef"]);

    // Link lost with a request pending: it fails at once, not after its timeout.
    const pending = link.openSession("web");
    await control.receive();
    const lostAt = performance.now();
    connections[0].close(0, "relay going away");
    await assert.rejects(pending, RelayLinkLostError);
    assert.ok(performance.now() - lostAt < 250, "failed before the request timeout");
  } finally {
    link.close();
    await node.close();
    await relay.close();
    serverConfig.free();
    clientConfig.free();
    await org.cleanup();
  }
});
