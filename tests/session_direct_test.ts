/**
 * Direct paths on one host: a relay, a connector and an agent on 127.0.0.1.
 * The session starts on the relay, the ends exchange candidates inside it,
 * punch, and the agent migrates the live session to the connector's socket;
 * the relay then forwards nothing for it. Forged punches change nothing.
 */
import assert from "node:assert/strict";
import { formatAddress } from "../lib/net/address.ts";
import { UdpSocket } from "../lib/net/udp_socket.ts";
import { Relay } from "../lib/relay/relay.ts";
import { sessionIdBytes } from "../lib/relay/session_id.ts";
import { PUNCH_PACKET_BYTES, PUNCH_PING, PunchSigner } from "../lib/session/punch_packet.ts";
import { waitFor } from "./support/bytes.ts";
import { datagramRoundTrips, streamRoundTrip } from "./support/exchange.ts";
import { makeTestOrg, nodeIdentity, startNode, stopNode, type TestNode } from "./support/nodes.ts";

Deno.test("on loopback a session goes direct: live migration, the relay forwards nothing more, forged punches change nothing", async () => {
  const org = await makeTestOrg("direct");
  const relay = Relay.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    ...await nodeIdentity(org, "relay-1", "relay"),
  });
  const nodes: TestNode[] = [];
  const stranger = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
  try {
    const connector = startNode(
      relay.address,
      await nodeIdentity(org, "conn-1", "connector", ["web"]),
      "connector",
    );
    const agent = startNode(relay.address, await nodeIdentity(org, "alice", "agent"), "agent");
    nodes.push(connector, agent);
    await connector.node.start();
    await agent.node.start();
    await connector.link.register("web");
    const session = await agent.node.openSession("web");
    const connection = session.connection!;
    const direct = formatAddress(connector.endpoint.localAddress);
    await waitFor(
      () => session.status().path === `direct ${direct}`,
      "the session to go direct",
      5_000,
    );
    const served = connector.node.sessions.get(session.id)!;
    await waitFor(
      () => served.status().path === `direct ${formatAddress(agent.endpoint.localAddress)}`,
      "the connector to follow the migration",
    );
    assert.equal(session.counters.migrations, 1);
    assert.ok(session.counters.punchesAccepted > 0, "punches were verified");

    // Traffic now flows directly; the relay sees none of it.
    const forwarded = relay.sessionSnapshots()[0];
    assert.equal(await datagramRoundTrips(connection, 2_000, 1_200), 2_000);
    const stream = await streamRoundTrip(connection, 2 << 20);
    assert.equal(stream.received, stream.sent);
    const after = relay.sessionSnapshots()[0];
    assert.equal(
      after.agentToConnector,
      forwarded.agentToConnector,
      "nothing relayed agent → connector",
    );
    assert.equal(
      after.connectorToAgent,
      forwarded.connectorToAgent,
      "nothing relayed connector → agent",
    );
    const active = connection.activePath()!;
    assert.equal(formatAddress(active.peer), direct);
    assert.ok(
      active.packetsReceived > 2_000,
      `${active.packetsReceived} packets on the direct path`,
    );

    // A stranger who knows the session ID but not the key: forged pings, and garbage.
    const id = sessionIdBytes(session.id);
    const forger = new PunchSigner(id, performance.now());
    const refused = () => session.counters.punchesRefused["bad-mac"];
    const before = refused();
    const agentSockaddr = stranger.sockaddrFor(agent.endpoint.localAddress);
    for (let i = 0; i < 50; i++) stranger.sendTo(forger.ping(1, performance.now()), agentSockaddr);
    const truncated = forger.ping(1, performance.now()).subarray(0, PUNCH_PACKET_BYTES - 1);
    for (let i = 0; i < 10; i++) stranger.sendTo(truncated, agentSockaddr);
    stranger.flush();
    await waitFor(() => refused() - before === 50, "the forged pings to be refused");
    assert.equal(agent.node.sessions.stats.punchUnmatched >= 10, true, "truncated punches dropped");
    assert.equal(truncated[0], PUNCH_PING);
    // Nothing answered the stranger, and the session did not move towards it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(stranger.stats.packetsReceived, 0, "no pong, no probe to the stranger");
    assert.equal(session.status().path, `direct ${direct}`);
    assert.ok(!session.status().policy.targets.includes(formatAddress(stranger.localAddress)));
    assert.equal(await datagramRoundTrips(connection, 200, 1_200), 200);
  } finally {
    await stranger.close();
    for (const node of nodes) await stopNode(node);
    await relay.close();
    await org.cleanup();
  }
});

Deno.test("on IPv6 loopback a session goes direct to the connector's [::1] socket; the relay forwards nothing more", async () => {
  const org = await makeTestOrg("direct6");
  const relay = Relay.start({
    listen: { hostname: "::1", port: 0 },
    ...await nodeIdentity(org, "relay-1", "relay"),
  });
  const nodes: TestNode[] = [];
  try {
    const bind = { hostname: "::1", port: 0 };
    const connector = startNode(
      relay.address,
      await nodeIdentity(org, "conn-1", "connector", ["web"]),
      "connector",
      { bind },
    );
    const agent = startNode(relay.address, await nodeIdentity(org, "alice", "agent"), "agent", {
      bind,
    });
    nodes.push(connector, agent);
    await connector.node.start();
    await agent.node.start();
    await connector.link.register("web");
    const session = await agent.node.openSession("web");
    const direct = formatAddress(connector.endpoint.localAddress);
    assert.match(direct, /^\[::1\]:\d+$/);
    await waitFor(
      () => session.status().path === `direct ${direct}`,
      "the session to go direct over IPv6",
      5_000,
    );
    const forwarded = relay.sessionSnapshots()[0];
    assert.equal(await datagramRoundTrips(session.connection!, 500, 1_200), 500);
    const after = relay.sessionSnapshots()[0];
    assert.deepEqual(
      [after.agentToConnector, after.connectorToAgent],
      [forwarded.agentToConnector, forwarded.connectorToAgent],
      "the relay forwarded packets of a direct session",
    );
    assert.equal(session.counters.migrations, 1);
  } finally {
    for (const node of nodes) await stopNode(node);
    await relay.close();
    await org.cleanup();
  }
});
