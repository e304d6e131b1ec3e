/**
 * One connector process publishing two services on loopback, from one identity: `ztna
 * connector --config FILE` with `[services.web]` and `[services.db]` tables (and, in a
 * second run, the same from `--service` and `--publish` flags). Both forward the same port
 * to different targets (127.0.0.1 and 127.0.0.2) with different access lists; real agents
 * (in-process nodes) open sessions through an in-process relay and exchange UDP: alice
 * reaches both and each service's bytes come from its own target, bob reaches web only and
 * hears access denied for db. A service the certificate does not grant stops the start.
 */
import assert from "node:assert/strict";
import { RelayRequestError } from "../lib/node/relay_link.ts";
import { Relay } from "../lib/relay/relay.ts";
import type { NodeIdentity } from "../lib/node/configs.ts";
import { AgentWire } from "./support/agent_wire.ts";
import { waitFor } from "./support/bytes.ts";
import { MAIN } from "./support/cli.ts";
import { denoCommand } from "../lib/netns/deno_command.ts";
import {
  makeTestOrg,
  nodeIdentity,
  RELAY_NAME,
  startNode,
  stopNode,
  type TestNode,
  type TestOrg,
} from "./support/nodes.ts";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A UDP server on `hostname`:`port` that answers each datagram with `tag` and the datagram. */
function taggedEcho(hostname: string, port: number, tag: string): Deno.DatagramConn {
  const socket = Deno.listenDatagram({ transport: "udp", hostname, port });
  (async () => {
    try {
      for await (const [data, from] of socket) {
        await socket.send(new Uint8Array([...text(tag), ...data]), from);
      }
    } catch {
      // Closed.
    }
  })();
  return socket;
}

/** Two tagged echo servers on one port: `web:` on 127.0.0.1, `db:` on 127.0.0.2. */
function twoTargets(): { port: number; close(): void } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const web = taggedEcho("127.0.0.1", 0, "web:");
    const port = (web.addr as Deno.NetAddr).port;
    try {
      const db = taggedEcho("127.0.0.2", port, "db:");
      return {
        port,
        close() {
          web.close();
          db.close();
        },
      };
    } catch {
      web.close();
    }
  }
  throw new Error("no port free on both 127.0.0.1 and 127.0.0.2");
}

/** A `ztna connector` process; resolves once it printed its first line (it is up). */
async function startConnector(args: string[], env: Record<string, string> = {}) {
  const [command, ...words] = denoCommand(MAIN, ["connector", ...args]);
  const child = new Deno.Command(command, {
    args: words,
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = new Response(child.stderr).text();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await stdout.read();
    if (done) {
      const status = await child.status;
      throw new Error(`connector exited ${status.code}: ${await stderr}`);
    }
    line += value;
  }
  return {
    line: line.trim(),
    async stop(): Promise<number> {
      child.kill("SIGTERM");
      await stdout.cancel();
      await stderr;
      return (await child.status).code;
    },
  };
}

/** Opens `agent`'s session to `service` and sends one UDP datagram to `port`; resolves with the answer. */
async function udpExchange(
  agent: TestNode,
  service: string,
  port: number,
  payload: string,
): Promise<string> {
  const session = await agent.node.openSession(service);
  const connection = session.connection!;
  const wire = new AgentWire();
  wire.attach((packet) => void connection.sendDatagram(packet));
  connection.onDatagram((packet) => wire.send(packet));
  wire.sendUdp(40_000, port, text(payload));
  await waitFor(() => wire.udp.length === 1, `the answer from ${service}`);
  session.close("done");
  return decode(wire.udp[0].payload);
}

/** What both runs share: the relay, the targets, the agents, the connector's identity. */
interface World {
  org: TestOrg;
  relay: Relay;
  port: number;
  alice: TestNode;
  bob: TestNode;
  connectorId: NodeIdentity;
  dir: string;
}

async function withWorld(body: (world: World) => Promise<void>): Promise<void> {
  const org = await makeTestOrg("services");
  const relayId = await nodeIdentity(org, "relay-1", "relay");
  const relay = Relay.start({ listen: { hostname: "127.0.0.1", port: 0 }, ...relayId });
  const targets = twoTargets();
  const agents: TestNode[] = [];
  try {
    const connectorId = await nodeIdentity(org, "conn-1", "connector", ["web", "db"]);
    for (const name of ["alice", "bob"]) {
      const agent = startNode(relay.address, await nodeIdentity(org, name, "agent"), "agent");
      agents.push(agent);
      await agent.link.start();
    }
    await body({
      org,
      relay,
      port: targets.port,
      alice: agents[0],
      bob: agents[1],
      connectorId,
      dir: org.dir,
    });
  } finally {
    for (const agent of agents) await stopNode(agent);
    targets.close();
    await relay.close();
    await org.cleanup();
  }
}

/** The checks both runs make against a connector publishing web (alice, bob) and db (alice). */
async function checkAccess(world: World): Promise<void> {
  const { alice, bob, port } = world;
  assert.equal(await udpExchange(alice, "web", port, "hello web"), "web:hello web");
  assert.equal(await udpExchange(alice, "db", port, "hello db"), "db:hello db");
  assert.equal(await udpExchange(bob, "web", port, "bob to web"), "web:bob to web");
  await assert.rejects(
    bob.node.openSession("db"),
    (error: Error) =>
      error instanceof RelayRequestError && error.code === "access-denied" &&
      /connector conn-1 refused this agent: not in the access list/.test(error.message),
  );
}

/** The flags every run shares: the relay and the identity. */
function common(world: World, id: NodeIdentity = world.connectorId): string[] {
  return [
    "--relay",
    `127.0.0.1:${world.relay.address.port}`,
    "--relay-name",
    RELAY_NAME,
    "--cert",
    id.certificateFile,
    "--key",
    id.privateKeyFile,
    "--ca",
    id.caFile,
    "--admin-socket",
    `${world.dir}/connector.sock`,
  ];
}

Deno.test("connector --config with two [services] tables: each its own targets and access list", async () => {
  await withWorld(async (world) => {
    const file = `${world.dir}/connector.toml`;
    await Deno.writeTextFile(
      file,
      [
        `relay = "127.0.0.1:${world.relay.address.port}"`,
        `relay-name = "${RELAY_NAME}"`,
        `cert = "${world.connectorId.certificateFile}"`,
        `key = "${world.connectorId.privateKeyFile}"`,
        `ca = "${world.connectorId.caFile}"`,
        `admin-socket = "${world.dir}/connector.sock"`,
        `max-sessions = 16`,
        `[services.web]`,
        `forward = ["127.0.0.1:${world.port}"]`,
        `allow = ["alice", "bob"]`,
        `[services.db]`,
        `forward = ["127.0.0.2:${world.port}"]`,
        `allow = ["alice"]`,
      ].join("\n"),
    );
    const connector = await startConnector(["--config", file]);
    try {
      assert.match(
        connector.line,
        /^connector publishing web, db; relay sees it at 127\.0\.0\.1:\d+$/,
      );
      assert.deepEqual(world.relay.snapshot().services, { web: 1, db: 1 });
      await checkAccess(world);
    } finally {
      assert.equal(await connector.stop(), 0);
    }
  });
});

Deno.test("connector --service and --publish flags: two services; one the certificate lacks stops the start", async () => {
  await withWorld(async (world) => {
    const connector = await startConnector([
      "--service",
      "web",
      "--forward",
      `127.0.0.1:${world.port}`,
      "--allow",
      "alice,bob",
      "--publish",
      `db=127.0.0.2:${world.port};allow=alice`,
      ...common(world),
    ]);
    try {
      assert.match(connector.line, /^connector publishing web, db; /);
      await checkAccess(world);
    } finally {
      assert.equal(await connector.stop(), 0);
    }

    const webOnly = await nodeIdentity(world.org, "conn-2", "connector", ["web"]);
    const [command, ...words] = denoCommand(MAIN, [
      "connector",
      "--publish",
      `web=127.0.0.1:${world.port};allow=*`,
      "--publish",
      `db=127.0.0.2:${world.port};allow=*`,
      ...common(world, webOnly),
    ]);
    const refused = await new Deno.Command(command, { args: words }).output();
    assert.equal(refused.code, 1);
    assert.equal(
      new TextDecoder().decode(refused.stderr).trim().split("\n").at(-1),
      "ztna connector: relay: conn-2 may not publish db",
    );
  });
});
