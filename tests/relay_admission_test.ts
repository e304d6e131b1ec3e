/**
 * Admission before exposure, and the bounds on sessions and connections: the
 * connector decides on an agent when the relay announces the session, before
 * any handshake, and a refused agent learns nothing about it; session IDs are
 * the relay's; sessions per agent (at the relay and at the connector), the
 * connector's answer and the agent's handshake have bounds; each identity
 * holds one relay connection and the relay holds at most `maxNodes`.
 */
import assert from "node:assert/strict";
import type { SocketAddress } from "../lib/net/address.ts";
import type { Message } from "../lib/control/messages.ts";
import { TUNNEL_MTU } from "../lib/node/configs.ts";
import { RelayRequestError } from "../lib/node/relay_link.ts";
import { Relay, RelayCloseCode, type RelayOptions } from "../lib/relay/relay.ts";
import { sessionIdBytes } from "../lib/relay/session_id.ts";
import { waitFor } from "./support/bytes.ts";
import { datagramRoundTrips } from "./support/exchange.ts";
import { HandMadeNode, Inbox } from "./support/hand_made_node.ts";
import {
  makeTestOrg,
  nodeIdentity,
  openSession,
  startNode,
  stopNode,
  type TestNode,
  type TestOrg,
} from "./support/nodes.ts";

const LOOPBACK: SocketAddress = { hostname: "127.0.0.1", port: 0 };

/** A relay, a connector publishing `web` that accepts only `allow`, and a working agent alice. */
async function setUp(
  label: string,
  relayOptions: Partial<RelayOptions> = {},
  connectorOptions: Parameters<typeof startNode>[3] = {},
) {
  const org = await makeTestOrg(label);
  const relay = Relay.start({
    listen: LOOPBACK,
    ...await nodeIdentity(org, "relay-1", "relay"),
    ...relayOptions,
  });
  const nodes: TestNode[] = [];
  const handMade: HandMadeNode[] = [];
  const connector = startNode(
    relay.address,
    await nodeIdentity(org, "conn-1", "connector", ["web"]),
    "connector",
    { allow: ["alice"], ...connectorOptions },
  );
  nodes.push(connector);
  const alice = startNode(relay.address, await nodeIdentity(org, "alice", "agent"), "agent", {
    relayOnly: true,
  });
  nodes.push(alice);
  await connector.link.start();
  await connector.link.register("web");
  await alice.link.start();
  return {
    org,
    relay,
    connector,
    alice,
    nodes,
    /** A hand-made node with a new identity of `role`, hello said. */
    async handMade(name: string, role: "agent" | "connector" = "agent"): Promise<HandMadeNode> {
      const node = await HandMadeNode.connect(
        relay.address,
        await nodeIdentity(org, name, role, role === "connector" ? ["web"] : []),
      );
      handMade.push(node);
      await node.hello(role);
      return node;
    },
    async close() {
      for (const node of handMade) await node.close();
      for (const node of nodes) await stopNode(node);
      await relay.close();
      await org.cleanup();
    },
  };
}

Deno.test("a refused agent hears access-denied at once, learns nothing, and costs the connector no handshake", async () => {
  const t = await setUp("admission");
  try {
    const session = await openSession(t.alice, "web");
    const connectorEndpoint = t.connector.endpoint;
    const acceptedBefore = connectorEndpoint.stats.connectionsAccepted;
    const mallory = await t.handMade("mallory");
    const inbox = new Inbox(mallory.control);
    const started = performance.now();
    await mallory.control.send({ type: "open-session", id: 1, service: "web" });
    const answer = await inbox.next();
    assert.ok(performance.now() - started < 1_000);
    assert.equal(answer?.type, "error");
    assert.equal(answer?.type === "error" && answer.code, "access-denied");
    assert.match(
      answer?.type === "error" ? answer.message : "",
      /connector conn-1 refused this agent: not in the access list/,
    );
    assert.equal(answer?.type === "error" && answer.id, 1);

    // A flood of requests: each refused (or rate limited) by the relay; none reaches a handshake.
    for (let id = 2; id <= 500; id++) {
      await mallory.control.send({ type: "open-session", id, service: "web" });
    }
    const answers = await inbox.quiet();
    assert.equal(answers.length, 499);
    const codes = new Set(answers.map((m) => m.type === "error" ? m.code : m.type));
    assert.deepEqual([...codes].sort(), ["access-denied", "rate-limited"]);
    // Nothing mallory heard names the connector's address.
    const port = String(connectorEndpoint.localAddress.port);
    assert.ok(![answer, ...answers].some((m) => JSON.stringify(m).includes(port)));
    // The connector kept no session and accepted no connection for mallory.
    assert.equal(t.connector.node.sessions.values().length, 1);
    assert.equal(connectorEndpoint.stats.connectionsAccepted, acceptedBefore);
    assert.equal(t.relay.snapshot().sessions, 1);
    // alice's session works throughout.
    assert.equal(await datagramRoundTrips(session, 500, TUNNEL_MTU), 500);
  } finally {
    await t.close();
  }
});

Deno.test("session IDs are the relay's: a resume of an unknown or another agent's ID starts afresh", async () => {
  const t = await setUp("ids", {}, { allow: ["alice", "bob"] });
  try {
    const aliceSession = await openSession(t.alice, "web");
    const [aliceId] = t.relay.sessionSnapshots().map((s) => s.id);
    const bob = await t.handMade("bob");
    const inbox = new Inbox(bob.control);
    // bob picks an ID of his own: the relay picks another, and the connector starts afresh.
    await bob.control.send({
      type: "open-session",
      id: 1,
      service: "web",
      resume: "0000000000000001",
    });
    const first = await inbox.next();
    assert.equal(first?.type, "session");
    const firstId = first?.type === "session" ? first.session : "";
    assert.notEqual(firstId, "0000000000000001");
    assert.equal(first?.type === "session" && first.resumes, undefined, "not a continuation");
    // bob names alice's live session: he gets a new one; alice's is untouched.
    await bob.control.send({ type: "open-session", id: 2, service: "web", resume: aliceId });
    const second = await inbox.next();
    assert.equal(second?.type, "session");
    assert.notEqual(second?.type === "session" && second.session, aliceId);
    assert.equal(second?.type === "session" && second.resumes, undefined);
    assert.ok(t.relay.sessionSnapshots().some((s) => s.id === aliceId && s.agent === "alice"));
    assert.equal(await datagramRoundTrips(aliceSession, 300, TUNNEL_MTU), 300);
    // bob's DATAGRAMs under alice's ID are not forwarded.
    const dropped = t.relay.stats.droppedNoSession;
    const data = new Uint8Array(100);
    data.set(sessionIdBytes(aliceId));
    for (let i = 0; i < 50; i++) bob.connection.sendDatagram(data);
    await waitFor(() => t.relay.stats.droppedNoSession - dropped === 50, "50 drops");
  } finally {
    await t.close();
  }
});

Deno.test("sessions per agent are bounded at the relay and at the connector; unused ones are dropped", async () => {
  const t = await setUp("per-agent", { maxSessionsPerAgent: 5 }, {
    allow: ["bob"],
    sessionLimits: { maxSessionsPerAgent: 3, handshakeWaitMs: 500 },
  });
  try {
    const bob = await t.handMade("bob");
    const inbox = new Inbox(bob.control);
    for (let id = 1; id <= 7; id++) {
      await bob.control.send({ type: "open-session", id, service: "web" });
    }
    const answers = await inbox.quiet();
    const outcome = (m: Message) => m.type === "error" ? `${m.id} ${m.code}` : `${m.type}`;
    const byId = answers.filter((m) => m.type === "session" || m.type === "error");
    // Three accepted by the connector, two refused by its bound, two by the relay's.
    assert.deepEqual(byId.map(outcome).sort(), [
      "4 limit-reached",
      "5 limit-reached",
      "6 limit-reached",
      "7 limit-reached",
      "session",
      "session",
      "session",
    ]);
    const messages = byId.filter((m) => m.type === "error").map((m) =>
      m.type === "error" ? m.message : ""
    );
    assert.equal(
      messages.filter((m) =>
        /connector conn-1 refused this agent: bob holds its limit of 3/.test(m)
      ).length,
      2,
    );
    assert.equal(messages.filter((m) => /bob holds its limit of 5 sessions/.test(m)).length, 2);
    assert.equal(t.connector.node.sessions.stats.refusedPerAgent, 2);
    assert.equal(t.relay.stats.sessionLimitHits, 2);
    // bob never handshakes: the connector drops the three after 500 ms and tells the relay.
    await waitFor(() => t.connector.node.sessions.values().length === 0, "the sessions dropped");
    assert.equal(t.connector.node.sessions.stats.handshakesMissed, 3);
    await waitFor(() => t.relay.snapshot().sessions === 0, "the relay to forget them");
    const closes = [...answers, ...await inbox.quiet(500)];
    assert.equal(closes.filter((m) => m.type === "close-session").length, 3);
    // The slots are free again.
    await bob.control.send({ type: "open-session", id: 8, service: "web" });
    assert.equal((await inbox.next()).type, "session");
  } finally {
    await t.close();
  }
});

Deno.test("a connector that does not answer: the agent hears unavailable after the deadline", async () => {
  const t = await setUp("no-answer", { admissionTimeoutMs: 300 });
  try {
    // The only publisher of db reads its stream but never answers announcements.
    const silent = await HandMadeNode.connect(
      t.relay.address,
      await nodeIdentity(t.org, "conn-2", "connector", ["db"]),
    );
    try {
      await silent.hello("connector");
      const inbox = new Inbox(silent.control);
      await silent.control.send({ type: "register", id: 1, service: "db" });
      assert.equal((await inbox.next()).type, "registered");
      const started = performance.now();
      await assert.rejects(
        t.alice.link.openSession("db"),
        (e: Error) => e instanceof RelayRequestError && e.code === "unavailable",
      );
      const waited = performance.now() - started;
      assert.ok(waited >= 280 && waited < 1_500, `answered after ${waited.toFixed(0)} ms`);
      const told = await inbox.quiet();
      assert.deepEqual(told.map((m) => m.type), ["session", "close-session"]);
      assert.equal(t.relay.stats.admissionTimeouts, 1);
      assert.equal(t.relay.snapshot().sessions, 0);
    } finally {
      await silent.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("each identity holds one relay connection; the relay refuses nodes past maxNodes", async () => {
  const org: TestOrg = await makeTestOrg("identity");
  const relay = Relay.start({
    listen: LOOPBACK,
    ...await nodeIdentity(org, "relay-1", "relay"),
    maxNodes: 3,
  });
  const handMade: HandMadeNode[] = [];
  try {
    const carol = await nodeIdentity(org, "carol", "agent");
    for (let i = 0; i < 4; i++) {
      const node = await HandMadeNode.connect(relay.address, carol);
      handMade.push(node);
    }
    await handMade[3].hello("agent");
    // The three older connections of carol were replaced by the newest one.
    for (const old of handMade.slice(0, 3)) {
      const close = await old.closedWithin(1_000);
      assert.deepEqual({ by: close.by, code: close.code }, {
        by: "peer",
        code: RelayCloseCode.Replaced,
      });
    }
    assert.equal(relay.stats.nodesReplaced, 3);
    assert.equal(relay.snapshot().nodes, 1);
    // Two more identities fill the relay; a fourth is refused with "relay full".
    for (const name of ["dave", "erin"]) {
      const node = await HandMadeNode.connect(
        relay.address,
        await nodeIdentity(org, name, "agent"),
      );
      handMade.push(node);
      await node.hello("agent");
    }
    const frank = await HandMadeNode.connect(
      relay.address,
      await nodeIdentity(org, "frank", "agent"),
    );
    handMade.push(frank);
    const close = await frank.closedWithin(1_000);
    assert.deepEqual({ by: close.by, code: close.code, reason: close.reason }, {
      by: "peer",
      code: RelayCloseCode.Busy,
      reason: "relay full",
    });
    assert.equal(relay.stats.nodesRefusedFull, 1);
    assert.equal(relay.snapshot().nodes, 3);
    // Carol coming back replaces her own connection: no new slot needed.
    const again = await HandMadeNode.connect(relay.address, carol);
    handMade.push(again);
    await again.hello("agent");
    assert.equal(relay.snapshot().nodes, 3);
  } finally {
    for (const node of handMade) await node.close();
    await relay.close();
    await org.cleanup();
  }
});
