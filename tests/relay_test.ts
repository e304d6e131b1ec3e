/**
 * Relay mode on loopback: a relay, a connector and an agent, each on its own
 * endpoint; QUIC address discovery; an end-to-end session whose packets ride
 * in relay DATAGRAMs; refusals; and a relay restart under a live transfer.
 */
import assert from "node:assert/strict";
import { formatAddress } from "../lib/net/address.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { FatalRelayError, RelayLink } from "../lib/node/relay_link.ts";
import {
  type NodeIdentity,
  relayClientConfig,
  sessionConfig,
  TUNNEL_MTU,
} from "../lib/node/configs.ts";
import { Relay } from "../lib/relay/relay.ts";
import { serviceServerName } from "../lib/pki/mod.ts";
import type { QuicConfig } from "../lib/quic/config.ts";
import { waitFor } from "./support/bytes.ts";
import { echo } from "./support/echo.ts";
import { datagramRoundTrips, streamRoundTrip } from "./support/exchange.ts";
import { makeTestOrg, RELAY_NAME, type TestOrg } from "./support/nodes.ts";

/** A node: its endpoint, relay link and the configs to free. */
interface TestNode {
  endpoint: Endpoint;
  link: RelayLink;
  configs: QuicConfig[];
  accepted: Connection[];
}

async function identity(
  org: TestOrg,
  name: string,
  role: "relay" | "connector" | "agent",
  services: string[] = [],
  notAfter?: Date,
): Promise<NodeIdentity> {
  const files = await org.issue(name, role, services, notAfter);
  return { certificateFile: files.certPath, privateKeyFile: files.keyPath, caFile: org.caPath };
}

/** Starts a node; a connector also accepts sessions and echoes them. */
function startNode(
  relay: Relay | { address: { hostname: string; port: number } },
  id: NodeIdentity,
  role: "connector" | "agent",
): TestNode {
  const relayConfig = relayClientConfig(id);
  const session = sessionConfig(id);
  const accepted: Connection[] = [];
  const endpoint = Endpoint.bind({
    address: { hostname: "127.0.0.1", port: 0 },
    server: role === "connector"
      ? { config: session, onConnection: (c) => (accepted.push(c), echo(c)) }
      : undefined,
  });
  const link: RelayLink = new RelayLink({
    endpoint,
    relay: relay.address,
    serverName: RELAY_NAME,
    config: relayConfig,
    role,
    onSession: (assignment) => link.attachSession(assignment),
  });
  return { endpoint, link, configs: [relayConfig, session], accepted };
}

async function stopNode(node: TestNode): Promise<void> {
  node.link.close();
  await node.endpoint.close();
  for (const config of node.configs) config.free();
}

/** Opens a session from `agent` to `service` and connects the QUIC session through it. */
async function openSession(agent: TestNode, service: string): Promise<Connection> {
  const assignment = await agent.link.openSession(service);
  const peer = agent.link.attachSession(assignment);
  const connection = agent.endpoint.connect({
    peer: peer.address,
    serverName: serviceServerName(service),
    config: agent.configs[1],
  });
  await connection.established;
  return connection;
}

Deno.test("relay: QAD, registration, a session through the relay, refusals", async () => {
  const org = await makeTestOrg("relay");
  const relayId = await identity(org, "relay-1", "relay");
  const relay = Relay.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    ...relayId,
    certificateFile: relayId.certificateFile,
    privateKeyFile: relayId.privateKeyFile,
  });
  const nodes: TestNode[] = [];
  try {
    const connector = startNode(
      relay,
      await identity(org, "conn-1", "connector", ["web"]),
      "connector",
    );
    const agent = startNode(relay, await identity(org, "alice", "agent"), "agent");
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
      const stranger = startNode(relay, await identity(otherOrg, "mallory", "agent"), "agent");
      nodes.push(stranger);
      await assert.rejects(
        stranger.link.start(),
        (e: Error) => e instanceof FatalRelayError && /TLS alert/.test(e.message),
      );
    } finally {
      await otherOrg.cleanup();
    }
    const expired = startNode(
      relay,
      await identity(org, "old", "agent", [], new Date(Date.now() - 3_600_000)),
      "agent",
    );
    nodes.push(expired);
    await assert.rejects(
      expired.link.start(),
      (e: Error) => e instanceof FatalRelayError && /TLS alert/.test(e.message),
    );
    const impostor = startNode(relay, await identity(org, "fake-connector", "agent"), "connector");
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
    const relayId = await identity(org, "relay-1", "relay");
    const options = { ...relayId, listen: { hostname: "127.0.0.1", port: 0 } };
    let relay = Relay.start(options);
    const address = relay.address;
    const nodes: TestNode[] = [];
    try {
      const connector = startNode(
        relay,
        await identity(org, "conn-1", "connector", ["web"]),
        "connector",
      );
      const agent = startNode(relay, await identity(org, "alice", "agent"), "agent");
      nodes.push(connector, agent);
      await connector.link.start();
      await agent.link.start();
      await connector.link.register("web");
      const session = await openSession(agent, "web");
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
    } finally {
      for (const node of nodes) await stopNode(node);
      await relay.close();
      await org.cleanup();
    }
  },
);

Deno.test("a node started before its relay retries with backoff and connects when the relay comes up", async () => {
  const org = await makeTestOrg("late-relay");
  const relayId = await identity(org, "relay-1", "relay");
  const options = { ...relayId, listen: { hostname: "127.0.0.1", port: 0 } };
  let relay = Relay.start(options);
  const address = relay.address;
  await relay.close();
  const connector = startNode(
    { address },
    await identity(org, "conn-1", "connector", ["web"]),
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
