/**
 * Relay mode on loopback: a relay, a connector and an agent, each on its own
 * endpoint; QUIC address discovery; an end-to-end session whose packets ride
 * in relay DATAGRAMs; refusals; and a relay restart under a live transfer.
 */
import assert from "node:assert/strict";
import { formatAddress } from "../lib/net/address.ts";
import { FatalRelayError } from "../lib/node/relay_link.ts";
import { TUNNEL_MTU } from "../lib/node/configs.ts";
import { Relay } from "../lib/relay/relay.ts";
import { waitFor } from "./support/bytes.ts";
import { datagramRoundTrips, streamRoundTrip } from "./support/exchange.ts";
import {
  makeTestOrg,
  nodeIdentity,
  openSession,
  startNode,
  stopNode,
  type TestNode,
} from "./support/nodes.ts";

Deno.test("relay: QAD, registration, a session through the relay, refusals", async () => {
  const org = await makeTestOrg("relay");
  const relayId = await nodeIdentity(org, "relay-1", "relay");
  const relay = Relay.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    ...relayId,
    certificateFile: relayId.certificateFile,
    privateKeyFile: relayId.privateKeyFile,
  });
  const nodes: TestNode[] = [];
  try {
    const connector = startNode(
      relay.address,
      await nodeIdentity(org, "conn-1", "connector", ["web"]),
      "connector",
    );
    // Relay only: this test counts what the relay forwards.
    const agent = startNode(relay.address, await nodeIdentity(org, "alice", "agent"), "agent", {
      relayOnly: true,
    });
    nodes.push(connector, agent);
    await connector.link.start();
    await agent.link.start();
    // QAD: on loopback the relay sees each node's socket address exactly.
    assert.equal(connector.link.observed, formatAddress(connector.endpoint.localAddress));
    assert.equal(agent.link.observed, formatAddress(agent.endpoint.localAddress));
    await connector.link.register("web");

    const session = await openSession(agent, "web");
    await waitFor(() => connector.accepted.length === 1, "the connector to accept the session");
    assert.ok(
      session.maxDatagramSize >= TUNNEL_MTU,
      `session DATAGRAMs hold ${session.maxDatagramSize} bytes`,
    );
    assert.equal(await datagramRoundTrips(session, 2_000, TUNNEL_MTU), 2_000);
    const stream = await streamRoundTrip(session, 2 << 20);
    assert.equal(stream.received, stream.sent);
    assert.ok(
      relay.stats.datagramsForwarded > 4_000,
      `relay forwarded ${relay.stats.datagramsForwarded}`,
    );
    assert.equal(relay.stats.droppedNoSession, 0);
    assert.equal(agent.endpoint.socketStats.packetsSent > 0, true);

    // Refusals with clear errors.
    await assert.rejects(
      connector.link.register("db"),
      (e: Error) => e instanceof FatalRelayError && /conn-1 may not publish db/.test(e.message),
    );
    await assert.rejects(
      agent.link.openSession("nothing"),
      (e: Error) =>
        e instanceof FatalRelayError && /no connector publishes nothing/.test(e.message),
    );

    const otherOrg = await makeTestOrg("other");
    try {
      const stranger = startNode(
        relay.address,
        await nodeIdentity(otherOrg, "mallory", "agent"),
        "agent",
      );
      nodes.push(stranger);
      await assert.rejects(
        stranger.link.start(),
        (e: Error) => e instanceof FatalRelayError && /TLS alert/.test(e.message),
      );
    } finally {
      await otherOrg.cleanup();
    }
    const expired = startNode(
      relay.address,
      await nodeIdentity(org, "old", "agent", [], new Date(Date.now() - 3_600_000)),
      "agent",
    );
    nodes.push(expired);
    await assert.rejects(
      expired.link.start(),
      (e: Error) => e instanceof FatalRelayError && /TLS alert/.test(e.message),
    );
    const impostor = startNode(
      relay.address,
      await nodeIdentity(org, "fake-connector", "agent"),
      "connector",
    );
    nodes.push(impostor);
    await assert.rejects(
      impostor.link.start(),
      (e: Error) => e instanceof FatalRelayError && /role/.test(e.message),
    );
  } finally {
    for (const node of nodes) await stopNode(node);
    await relay.close();
    await org.cleanup();
  }
});

Deno.test(
  "relay restart during a transfer: nodes reconnect and the session's stream completes intact",
  async () => {
    const org = await makeTestOrg("restart");
    const relayId = await nodeIdentity(org, "relay-1", "relay");
    const options = { ...relayId, listen: { hostname: "127.0.0.1", port: 0 } };
    let relay = Relay.start(options);
    const address = relay.address;
    const nodes: TestNode[] = [];
    try {
      const connector = startNode(
        relay.address,
        await nodeIdentity(org, "conn-1", "connector", ["web"]),
        "connector",
      );
      // Relay only: the transfer must cross the relay restart.
      const agent = startNode(relay.address, await nodeIdentity(org, "alice", "agent"), "agent", {
        relayOnly: true,
      });
      nodes.push(connector, agent);
      await connector.link.start();
      await agent.link.start();
      await connector.link.register("web");
      const session = await openSession(agent, "web");
      const [before] = agent.node.sessions.values();
      const firstId = before.id;
      const transfer = streamRoundTrip(session, 8 << 20);
      await new Promise((resolve) => setTimeout(resolve, 150));
      await relay.close();
      await new Promise((resolve) => setTimeout(resolve, 700));
      relay = Relay.start({ ...options, listen: address });
      const stream = await transfer;
      assert.equal(stream.receivedLength, 8 << 20);
      assert.equal(stream.received, stream.sent);
      assert.ok(
        agent.link.reconnects >= 1 && connector.link.reconnects >= 1,
        "both nodes reconnected",
      );
      assert.equal(session.isClosed, false);
      // The new relay chose a new ID; both ends continue the same session under it.
      await waitFor(() => relay.sessionSnapshots().length === 1, "the session at the new relay");
      const id = relay.sessionSnapshots()[0].id;
      assert.notEqual(id, firstId);
      assert.deepEqual(agent.node.sessions.values().map((s) => s.id), [id]);
      assert.deepEqual(connector.node.sessions.values().map((s) => s.id), [id]);
      assert.equal(agent.node.sessions.values()[0], before, "the same session object");
    } finally {
      for (const node of nodes) await stopNode(node);
      await relay.close();
      await org.cleanup();
    }
  },
);

Deno.test("a node started before its relay retries with backoff and connects when the relay comes up", async () => {
  const org = await makeTestOrg("late-relay");
  const relayId = await nodeIdentity(org, "relay-1", "relay");
  const options = { ...relayId, listen: { hostname: "127.0.0.1", port: 0 } };
  let relay = Relay.start(options);
  const address = relay.address;
  await relay.close();
  const connector = startNode(
    address,
    await nodeIdentity(org, "conn-1", "connector", ["web"]),
    "connector",
  );
  try {
    const started = connector.link.start();
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    relay = Relay.start({ ...options, listen: address });
    await started;
    assert.equal(connector.link.observed, formatAddress(connector.endpoint.localAddress));
    await connector.link.register("web");
    assert.deepEqual(relay.snapshot().services, { web: 1 });
  } finally {
    await stopNode(connector);
    await relay.close();
    await org.cleanup();
  }
});

Deno.test("a relay whose certificate grants another role is refused, whatever name it holds", async () => {
  const org = await makeTestOrg("fake-relay");
  // A connector's certificate, dialled by a name it holds (web.svc.ztna), posing as the relay.
  const connectorId = await nodeIdentity(org, "conn-1", "connector", ["web"]);
  const fake = Relay.start({ listen: { hostname: "127.0.0.1", port: 0 }, ...connectorId });
  const agent = startNode(fake.address, await nodeIdentity(org, "alice", "agent"), "agent", {
    serverName: "web.svc.ztna",
  });
  try {
    await assert.rejects(
      agent.link.start(),
      (e: Error) =>
        e instanceof FatalRelayError &&
        /certificate for web\.svc\.ztna that grants role connector, not relay/.test(e.message),
    );
  } finally {
    await stopNode(agent);
    await fake.close();
    await org.cleanup();
  }
});
