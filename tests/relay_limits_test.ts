/**
 * The relay's limits: a node's DATAGRAMs are rate limited by its token bucket;
 * DATAGRAMs for no session (or a session the sender is not an end of) are
 * dropped and counted, never forwarded; a node that breaks the control
 * protocol is closed with a protocol close while the relay serves the others.
 * Misbehaving nodes are made by hand (an Endpoint and a MessageStream), with
 * valid identities, so they get past the handshake and the hello.
 */
import assert from "node:assert/strict";
import type { SocketAddress } from "../lib/net/address.ts";
import { MAX_MESSAGE_BYTES } from "../lib/control/message_stream.ts";
import { type Message, PROTOCOL_VERSION } from "../lib/control/messages.ts";
import { TUNNEL_MTU } from "../lib/node/configs.ts";
import { QuicConfig } from "../lib/quic/config.ts";
import { RELAY_ALPN } from "../lib/relay/constants.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { MAX_CLOSE_REASON_BYTES } from "../lib/quic/connection.ts";
import { Relay, RelayCloseCode } from "../lib/relay/relay.ts";
import { SESSION_ID_BYTES, sessionIdBytes, sessionIdHex } from "../lib/relay/session_id.ts";
import { waitFor } from "./support/bytes.ts";
import { HandMadeNode, within } from "./support/hand_made_node.ts";
import { datagramRoundTrips, streamRoundTrip } from "./support/exchange.ts";
import { makeTestOrg, nodeIdentity, startNode, stopNode, type TestNode } from "./support/nodes.ts";

const LOOPBACK: SocketAddress = { hostname: "127.0.0.1", port: 0 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A relay, a connector publishing `web` and an agent, both connected; the caller closes it. */
async function relayWithNodes(label: string, packetsPerSecond?: number) {
  const org = await makeTestOrg(label);
  const relay = Relay.start({
    listen: LOOPBACK,
    ...await nodeIdentity(org, "relay-1", "relay"),
    packetsPerSecond,
  });
  const nodes: TestNode[] = [];
  const connector = startNode(
    relay.address,
    await nodeIdentity(org, "conn-1", "connector", ["web"]),
    "connector",
  );
  nodes.push(connector);
  // Relay only: these tests count what the relay forwards and drops.
  const agent = startNode(relay.address, await nodeIdentity(org, "alice", "agent"), "agent", {
    relayOnly: true,
  });
  nodes.push(agent);
  await connector.link.start();
  await agent.link.start();
  await connector.link.register("web");
  return {
    org,
    relay,
    connector,
    agent,
    nodes,
    async close() {
      for (const node of nodes) await stopNode(node);
      await relay.close();
      await org.cleanup();
    },
  };
}

/** Opens a session from `agent` to `web`; returns its relay session ID and the QUIC session. */
async function openWebSession(agent: TestNode): Promise<{ id: string; session: Connection }> {
  const session = await agent.node.openSession("web");
  return { id: session.id, session: session.connection! };
}

/** A relay DATAGRAM: the 8-byte session ID, then `payloadLength` bytes. */
function relayDatagram(id: Uint8Array, payloadLength: number): Uint8Array {
  const data = new Uint8Array(SESSION_ID_BYTES + payloadLength);
  data.set(id.subarray(0, SESSION_ID_BYTES));
  data.fill(0xab, SESSION_ID_BYTES);
  return data;
}

Deno.test("a relay limited to 50 packets/s forwards a DATAGRAM burst partially; the session lives on", async () => {
  const RATE = 50;
  const BURST = 300;
  const setup = await relayWithNodes("rate-limit", RATE);
  try {
    const { relay, agent } = setup;
    const { session } = await openWebSession(agent);
    // Let both nodes' buckets fill up again after the session's handshake.
    await sleep(1_200);

    const echoes = new Set<number>();
    const stopEchoes = session.onDatagram((data) =>
      echoes.add(new DataView(data.buffer, data.byteOffset).getUint32(0))
    );
    const forwarded0 = relay.stats.datagramsForwarded;
    const limited0 = relay.stats.droppedRateLimited;
    const started = performance.now();
    const payload = new Uint8Array(1_000);
    for (let i = 0; i < BURST; i++) {
      new DataView(payload.buffer).setUint32(0, i);
      assert.ok(session.sendDatagram(payload), `DATAGRAM ${i} queued`);
    }
    // The session's congestion control slows down as the relay drops; wait until
    // every DATAGRAM has left the session and the echoes stopped coming.
    await waitFor(
      () => session.stats().datagramsSent >= BURST,
      `the session to send its ${BURST} DATAGRAMs (sent ${session.stats().datagramsSent})`,
      15_000,
    );
    for (let count = -1; count !== echoes.size;) {
      count = echoes.size;
      await sleep(300);
    }
    const elapsed = (performance.now() - started) / 1_000;
    const forwarded = relay.stats.datagramsForwarded - forwarded0;
    const limited = relay.stats.droppedRateLimited - limited0;
    // Each of the two ends has a bucket of RATE tokens refilled at RATE per second.
    const bound = 2 * (RATE + RATE * elapsed);
    const detail =
      `${forwarded} forwarded, ${limited} rate-limited, ${echoes.size}/${BURST} echoes in ${
        elapsed.toFixed(2)
      } s (bound ${bound.toFixed(0)})`;
    console.log(detail);
    assert.ok(limited > 0, `the relay dropped excess packets: ${detail}`);
    assert.ok(forwarded <= bound + 2, `forwarded within the buckets: ${detail}`);
    assert.ok(forwarded >= RATE, `a full bucket's burst was forwarded: ${detail}`);
    assert.ok(echoes.size > 0 && echoes.size < BURST, `the burst came back in part: ${detail}`);
    assert.equal(relay.stats.droppedNoSession, 0);

    // At a low rate, after the buckets refilled, everything goes through.
    await sleep(1_200);
    const limitedBefore = relay.stats.droppedRateLimited;
    const slow = new Set<number>();
    stopEchoes();
    session.onDatagram((data) => slow.add(new DataView(data.buffer, data.byteOffset).getUint32(0)));
    for (let i = 0; i < 20; i++) {
      new DataView(payload.buffer).setUint32(0, 1_000_000 + i);
      assert.ok(session.sendDatagram(payload));
      await sleep(50);
    }
    await waitFor(() => slow.size >= 20, `20 slow echoes (got ${slow.size})`, 3_000);
    assert.deepEqual(
      [...slow].sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => 1_000_000 + i),
    );
    assert.equal(relay.stats.droppedRateLimited, limitedBefore, "nothing dropped at a low rate");
    // The session's reliable streams recover from the losses too.
    const stream = await streamRoundTrip(session, 16 << 10);
    assert.equal(stream.received, stream.sent);
    assert.equal(session.isClosed, false);
  } finally {
    await setup.close();
  }
});

Deno.test("the relay forwards nothing for an unmatched session and counts every drop", async () => {
  const setup = await relayWithNodes("no-session");
  const { relay, connector, agent, org } = setup;
  let mallory: HandMadeNode | undefined;
  try {
    const { id, session } = await openWebSession(agent);
    await waitFor(() => connector.accepted.length === 1, "the connector to accept");
    assert.equal(await datagramRoundTrips(session, 100, TUNNEL_MTU), 100);

    // A hand-made agent with a valid identity: it gets in and is welcomed.
    mallory = await HandMadeNode.connect(
      relay.address,
      await nodeIdentity(org, "mallory", "agent"),
    );
    const welcome = await mallory.hello("agent");
    assert.equal(welcome.node, "mallory");
    assert.equal(welcome.version, PROTOCOL_VERSION);
    await waitFor(() => relay.snapshot().nodes === 3, "mallory to be admitted");

    // Quiet the live session, then watch both of its ends.
    await sleep(200);
    let agentSaw = 0, connectorSaw = 0;
    session.onDatagram(() => agentSaw++);
    const served = connector.accepted[0];
    served.onDatagram(() => connectorSaw++);
    const agentReceived = session.stats().datagramsReceived;
    const connectorReceived = served.stats().datagramsReceived;
    const forwarded = relay.stats.datagramsForwarded;
    const bytes = relay.stats.bytesForwarded;
    const dropped = relay.stats.droppedNoSession;

    let random = crypto.getRandomValues(new Uint8Array(SESSION_ID_BYTES));
    while (sessionIdHex(random) === id) crypto.getRandomValues(random);
    const sent = { random: 100, liveSessionNotAnEnd: 50, tooShort: 10 };
    for (let i = 0; i < sent.random; i++) {
      if (i % 10 === 0) random = crypto.getRandomValues(new Uint8Array(SESSION_ID_BYTES));
      assert.ok(mallory.connection.sendDatagram(relayDatagram(random, 200)));
    }
    // The live session's real ID, from a node that is not one of its ends.
    for (let i = 0; i < sent.liveSessionNotAnEnd; i++) {
      assert.ok(
        mallory.connection.sendDatagram(relayDatagram(sessionIdBytes(id), 200)),
      );
    }
    // Just a session ID, or less: nothing to forward.
    for (let i = 0; i < sent.tooShort; i++) {
      assert.ok(
        mallory.connection.sendDatagram(sessionIdBytes(id).subarray(0, 1 + i % 8)),
      );
    }
    const total = sent.random + sent.liveSessionNotAnEnd + sent.tooShort;
    await waitFor(
      () => relay.stats.droppedNoSession - dropped >= total,
      `${total} drops (counted ${relay.stats.droppedNoSession - dropped})`,
      5_000,
    );
    await sleep(200);
    assert.equal(relay.stats.droppedNoSession - dropped, total);
    assert.equal(relay.stats.datagramsForwarded, forwarded);
    assert.equal(relay.stats.bytesForwarded, bytes);
    assert.equal(relay.stats.droppedRateLimited, 0);
    assert.equal(agentSaw, 0);
    assert.equal(connectorSaw, 0);
    assert.equal(session.stats().datagramsReceived, agentReceived);
    assert.equal(served.stats().datagramsReceived, connectorReceived);
    assert.equal(mallory.datagramsReceived, 0);
    // Dropping is silent: mallory stays connected, the session keeps working.
    assert.equal(mallory.connection.isClosed, false);
    assert.equal(relay.snapshot().sessions, 1);
    assert.equal(await datagramRoundTrips(session, 100, TUNNEL_MTU), 100);
    assert.equal(relay.stats.droppedNoSession - dropped, total);
    assert.equal(mallory.datagramsReceived, 0);
  } finally {
    await mallory?.close();
    await setup.close();
  }
});

/** A control stream violation by a hand-made node, and the close reason the relay must send. */
interface Violation {
  name: string;
  /** Says hello first. */
  hello: boolean;
  act(node: HandMadeNode): Promise<void>;
  reason: string | RegExp;
  /** How long the relay may take to close (default 5 s). */
  within?: number;
}

const encode = (text: string) => new TextEncoder().encode(text);

const VIOLATIONS: Violation[] = [
  {
    name: "register without a service",
    hello: true,
    act: (node) => node.sendFrame(encode(`{"type":"register","id":1}`)),
    reason: `"register" message needs a string "service"`,
  },
  {
    name: "a frame over 64 KiB",
    hello: true,
    act: (node) => node.sendFrame(encode(`{"type":"register","service":"web"}`), 65_537),
    reason: `control message of 65537 bytes exceeds ${MAX_MESSAGE_BYTES}`,
  },
  {
    name: "an invalid service name",
    hello: true,
    act: (node) => node.sendFrame(encode(`{"type":"open-session","id":1,"service":"Web_1"}`)),
    reason: `invalid service name "Web_1"`,
  },
  {
    name: "a request without an ID",
    hello: true,
    act: (node) => node.sendFrame(encode(`{"type":"register","service":"web"}`)),
    reason: `"register" message needs a request "id" (a non-negative integer)`,
  },
  {
    name: "a message without a type",
    hello: true,
    act: (node) => node.sendFrame(encode(`{"service":"web"}`)),
    reason: `a message needs a "type" of 1-64 characters`,
  },
  {
    name: "not JSON",
    hello: true,
    act: (node) => node.sendFrame(encode(`{"type":`)),
    reason: /^control message is not JSON: /,
  },
  {
    name: "a first message other than hello",
    hello: false,
    act: (node) => node.sendFrame(encode(`{"type":"register","id":1,"service":"web"}`)),
    reason: "expected hello, got register",
  },
  {
    // The close reason quotes the name; cut, it still fits one packet and leaves at once.
    name: "a 60,000-character service name",
    hello: true,
    act: (node) =>
      node.sendFrame(encode(`{"type":"register","id":1,"service":"${"x".repeat(60_000)}"}`)),
    reason: /^invalid service name "x{200,}…$/,
  },
  {
    // One byte starts the control stream but is no hello: the hello deadline still runs.
    name: "a byte on the control stream, then nothing",
    hello: false,
    act: (node) => node.stream.write(new Uint8Array([0])),
    reason: "no hello on the control stream",
    within: 8_000,
  },
  {
    name: "a second stream",
    hello: true,
    act: (node) => node.connection.openStream().write(encode("x")),
    reason: "only one control stream is allowed",
  },
];

Deno.test("a node breaking the control protocol gets a protocol close; the relay serves the others", async () => {
  const setup = await relayWithNodes("malformed");
  const { relay, connector, agent, org } = setup;
  const handMade: HandMadeNode[] = [];
  try {
    const { session } = await openWebSession(agent);
    const id = await nodeIdentity(org, "mallory", "agent");
    for (const violation of VIOLATIONS) {
      const node = await HandMadeNode.connect(relay.address, id);
      handMade.push(node);
      if (violation.hello) await node.hello("agent");
      await violation.act(node);
      const close = await node.closedWithin(violation.within);
      const what = `${violation.name}: ${JSON.stringify(close).slice(0, 400)}`;
      assert.ok(new TextEncoder().encode(close.reason).length <= MAX_CLOSE_REASON_BYTES, what);
      assert.equal(close.by, "peer", what);
      assert.equal(close.isApplication, true, what);
      assert.equal(close.code, RelayCloseCode.Protocol, what);
      if (typeof violation.reason === "string") assert.equal(close.reason, violation.reason, what);
      else assert.match(close.reason, violation.reason, what);
      // Meanwhile the others are served.
      assert.equal(await datagramRoundTrips(session, 20, TUNNEL_MTU), 20, violation.name);
    }

    // A frame of exactly 64 KiB is within the limit: the relay parses it and answers.
    const big = await HandMadeNode.connect(relay.address, id);
    handMade.push(big);
    await big.hello("agent");
    const padding = "x".repeat(
      MAX_MESSAGE_BYTES - `{"type":"register","id":7,"service":"web","p":""}`.length,
    );
    const body = encode(`{"type":"register","id":7,"service":"web","p":"${padding}"}`);
    assert.equal(body.length, MAX_MESSAGE_BYTES);
    await big.sendFrame(body);
    const answer = await big.control.receive();
    assert.equal(answer?.type, "error");
    assert.equal(answer?.type === "error" && answer.code, "forbidden");
    assert.equal(answer?.type === "error" && answer.id, 7, "the error answers request 7");
    assert.equal(big.connection.isClosed, false);
    // Forward compatibility: a message of a type this relay does not know is skipped.
    await big.sendFrame(encode(`{"type":"frobnicate","id":8}`));
    await big.control.send({ type: "open-session", id: 9, service: "nothing" });
    const skipped = await big.control.receive();
    assert.equal(skipped?.type === "error" && skipped.id, 9, "the next request is answered");
    assert.equal(skipped?.type === "error" && skipped.code, "unknown-service");
    assert.equal(big.connection.isClosed, false);
    // A valid message a node may not send is answered, not fatal.
    await big.control.send({ type: "hello", version: PROTOCOL_VERSION, role: "agent" });
    const again = await big.control.receive();
    assert.equal(again?.type === "error" && again.code, "bad-message");
    assert.equal(big.connection.isClosed, false);

    // The relay is intact: the live nodes and session, and a newcomer.
    await waitFor(() => relay.snapshot().nodes === 3, "the refused nodes to be forgotten");
    assert.deepEqual(relay.snapshot(), { nodes: 3, sessions: 1, services: { web: 1 } });
    assert.equal(await datagramRoundTrips(session, 500, TUNNEL_MTU), 500);
    const stream = await streamRoundTrip(session, 1 << 20);
    assert.equal(stream.received, stream.sent);
    const bob = startNode(relay.address, await nodeIdentity(org, "bob", "agent"), "agent", {
      relayOnly: true,
    });
    setup.nodes.push(bob);
    await bob.link.start();
    const second = await openWebSession(bob);
    await waitFor(() => connector.accepted.length === 2, "the connector to accept bob");
    assert.equal(await datagramRoundTrips(second.session, 200, TUNNEL_MTU), 200);
    assert.equal(agent.link.reconnects + connector.link.reconnects, 0);
  } finally {
    for (const node of handMade) await node.close();
    await setup.close();
  }
});

Deno.test("a connector that never reads its control stream holds up no one: the relay disconnects it", async () => {
  const org = await makeTestOrg("unread");
  const relay = Relay.start({
    listen: LOOPBACK,
    ...await nodeIdentity(org, "relay-1", "relay"),
    controlStallMs: 500,
    // Only the stall ends lazy's pending sessions, not the connector's answer deadline.
    admissionTimeoutMs: 60_000,
  });
  const handMade: HandMadeNode[] = [];
  const configs: QuicConfig[] = [];
  // A healthy connector publishes db; it accepts every session.
  const healthy = startNode(
    relay.address,
    await nodeIdentity(org, "conn-1", "connector", ["db"]),
    "connector",
    { sessionLimits: { maxSessionsPerAgent: 1_000 } },
  );
  try {
    await healthy.link.start();
    await healthy.link.register("db");
    // A connector whose stream window is 2 KiB and which, once registered, reads nothing more.
    const lazyId = await nodeIdentity(org, "conn-2", "connector", ["web"]);
    const lazyConfig = new QuicConfig({
      alpn: [RELAY_ALPN],
      certificateChainFile: lazyId.certificateFile,
      privateKeyFile: lazyId.privateKeyFile,
      caFile: lazyId.caFile,
      initialMaxStreamData: 2_048,
      datagrams: { receiveQueue: 64, sendQueue: 64 },
    });
    configs.push(lazyConfig);
    const lazy = await HandMadeNode.connect(relay.address, lazyId, lazyConfig);
    handMade.push(lazy);
    await lazy.hello("connector");
    await lazy.control.send({ type: "register", id: 1, service: "web" });
    assert.equal((await lazy.control.receive())?.type, "registered");

    // An agent asks, every 10 ms, for a session to web (announced to lazy, whose stream is
    // full after about fifteen) and one to db, whose answer must come at once each time.
    const bob = await HandMadeNode.connect(relay.address, await nodeIdentity(org, "bob", "agent"));
    handMade.push(bob);
    await bob.hello("agent");
    const webAnswers = new Map<number, string>();
    let dbAnswered = 0;
    const started = performance.now();
    for (let round = 1; round <= 100; round++) {
      const web = 2 * round;
      const db = web + 1;
      await bob.control.send({ type: "open-session", id: web, service: "web" });
      await bob.control.send({ type: "open-session", id: db, service: "db" });
      for (;;) {
        const answer = await within(bob.control.receive(), 1_000, `the answer to request ${db}`);
        if (answer?.type === "session" && answer.id === db) break;
        // Answers for web (once lazy is dropped), and closes of db sessions nobody handshakes.
        if (answer?.type === "error" && answer.id !== undefined) {
          webAnswers.set(answer.id, answer.code);
        } else if (answer?.type !== "close-session") {
          assert.fail(`unexpected ${JSON.stringify(answer)}`);
        }
      }
      dbAnswered++;
      await sleep(10);
    }
    const took = performance.now() - started;
    assert.equal(dbAnswered, 100);
    assert.ok(took < 100 * 10 + 2_000, `100 rounds took ${took.toFixed(0)} ms`);
    const close = await lazy.closedWithin(1_000);
    assert.deepEqual(
      { by: close.by, code: close.code, reason: close.reason },
      { by: "peer", code: RelayCloseCode.Protocol, reason: "control stream not read" },
    );
    assert.equal(relay.stats.nodesNotReading, 1);
    // Every web request was answered: the pending ones `unavailable` when lazy was dropped,
    // later ones `unknown-service`; none was ever accepted.
    await waitFor(() => webAnswers.size === 100, `answers to all 100 web requests`);
    const codes = [...webAnswers.values()];
    const unavailable = codes.filter((code) => code === "unavailable").length;
    assert.ok(unavailable >= 10, `${unavailable} pending when lazy was dropped`);
    assert.deepEqual(
      codes.filter((code) => code !== "unavailable"),
      Array(100 - unavailable).fill("unknown-service"),
    );
    assert.equal(bob.connection.isClosed, false, "the agent that reads stays");
  } finally {
    for (const node of handMade) await node.close();
    for (const config of configs) config.free();
    await stopNode(healthy);
    await relay.close();
    await org.cleanup();
  }
});

Deno.test("refused requests cost debug lines and one summary, not an info line each", async () => {
  const org = await makeTestOrg("refusals");
  const relayId = await nodeIdentity(org, "relay-1", "relay");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "--allow-all", "--unstable-net", new URL("../main.ts", import.meta.url).pathname],
      ...["relay", "--listen", "127.0.0.1:0", "--cert", relayId.certificateFile],
      ...["--key", relayId.privateKeyFile, "--ca", relayId.caFile, "--no-stun"],
      ...["--admin-socket", `${org.dir}/relay.sock`],
    ],
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const pump = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
  })();
  let bob: HandMadeNode | undefined;
  try {
    await waitFor(() => /listening on 127\.0\.0\.1:\d+/.test(stderr), "the relay to listen");
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stderr)![1]);
    const before = stderr.length;
    bob = await HandMadeNode.connect(
      { hostname: "127.0.0.1", port },
      await nodeIdentity(org, "bob", "agent"),
    );
    const node = bob;
    await node.hello("agent");
    const refused = 2_000;
    for (let id = 1; id <= refused; id++) {
      await node.control.send({ type: "open-session", id, service: "nothing" });
    }
    const codes: Record<string, number> = {};
    for (let id = 1; id <= refused; id++) {
      const answer: Message | null = await node.control.receive();
      const code = answer?.type === "error" ? answer.code : `not an error: ${answer?.type}`;
      codes[code] = (codes[code] ?? 0) + 1;
    }
    // The first 200 (the burst of 50 requests/s) are looked at, the rest refused unread.
    const looked = codes["unknown-service"];
    assert.ok(looked >= 200 && looked < 260, `${looked} requests answered unknown-service`);
    assert.deepEqual(codes, { "unknown-service": looked, "rate-limited": refused - looked });
    await sleep(200);
    const logged = stderr.slice(before);
    // At info level: the node's connection, not 2,000 refusals (the summary comes once a minute).
    assert.ok(logged.length < 1_000, `${logged.length} bytes of logs:\n${logged.slice(0, 500)}`);
    assert.doesNotMatch(logged, /no connector publishes nothing/);
  } finally {
    await bob?.close();
    child.kill("SIGTERM");
    await child.status;
    await pump;
    await org.cleanup();
  }
  // On stopping, the relay logs the summary of what it refused.
  assert.match(stderr, /refused in the last 60 s: unknown-service \d+, rate-limited \d+/);
});
