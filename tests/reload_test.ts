/**
 * Reloading on SIGHUP without dropping sessions (loopback): a real `ztna
 * connector` process gets a new certificate under a live session, which keeps
 * moving bytes while a new session sees the new certificate; a reload with a
 * broken key keeps the old identity. In process: the access list reload cuts
 * off a removed agent's live session and refuses its new ones; a certificate
 * that no longer grants the published service, or is from another CA, is
 * refused; the relay (in process and as a real `ztna relay` on SIGHUP) serves
 * new connections the new certificate.
 */
import assert from "node:assert/strict";
import { readStatus } from "../lib/admin/client.ts";
import { Connector } from "../lib/connector/connector.ts";
import { IdentityCheckError } from "../lib/identity/identity_check.ts";
import { summarizeCertificate, summarizeCertificateFile } from "../lib/identity/summary.ts";
import { formatAddress, parseHostPort, type SocketAddress } from "../lib/net/address.ts";
import { type NodeIdentity, relayClientConfig } from "../lib/node/configs.ts";
import { FatalRelayError } from "../lib/node/relay_link.ts";
import {
  isPacketError,
  parseIp,
  parseIpAddress,
  parseUdp,
  udpHeadersLength,
  writeUdpPacket,
} from "../lib/packet/mod.ts";
import {
  createCa,
  grantNames,
  type Identity,
  issueIdentity,
  writeIdentityFiles,
} from "../lib/pki/mod.ts";
import type { Connection } from "../lib/quic/connection.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { Relay } from "../lib/relay/relay.ts";
import { AGENT_ADDRESS, SERVICE_ADDRESS } from "./support/agent_wire.ts";
import { pseudoRandomBytes, sha256, waitFor } from "./support/bytes.ts";
import { DaemonProcess } from "./support/daemon_process.ts";
import { RELAY_NAME, startNode, stopNode, type TestNode } from "./support/nodes.ts";

/** A CA whose identities can be issued again into the same files (a rotation). */
class RotatingOrg {
  readonly caFile: string;
  private constructor(readonly dir: string, readonly ca: Identity) {
    this.caFile = `${dir}/ca.crt`;
  }

  static async create(label: string): Promise<RotatingOrg> {
    const dir = await Deno.makeTempDir({ prefix: `ztna-reload-${label}-` });
    const ca = await createCa({ commonName: `ztna ${label} CA` });
    await writeIdentityFiles(ca, dir, "ca");
    return new RotatingOrg(dir, ca);
  }

  /** Issues `name` into `<dir>/<name>.crt|key`, replacing what is there; valid `days` days. */
  async issue(
    name: string,
    role: "relay" | "connector" | "agent",
    services: string[] = [],
    days = 365,
  ): Promise<NodeIdentity> {
    const notBefore = new Date(Date.now() - 60_000);
    const identity = await issueIdentity(this.ca, {
      commonName: name,
      ...grantNames(name, role, services, role === "relay" ? [RELAY_NAME] : []),
      notBefore,
      notAfter: new Date(notBefore.getTime() + days * 86_400_000),
    });
    const files = await writeIdentityFiles(identity, this.dir, name, { overwrite: true });
    return { certificateFile: files.certPath, privateKeyFile: files.keyPath, caFile: this.caFile };
  }

  cleanup(): Promise<void> {
    return Deno.remove(this.dir, { recursive: true });
  }
}

/** A UDP echo server on loopback. */
function udpEcho(): { port: number; close(): void } {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  (async () => {
    try {
      for await (const [data, from] of socket) await socket.send(data, from);
    } catch {
      // Closed.
    }
  })();
  return { port: (socket.addr as Deno.NetAddr).port, close: () => socket.close() };
}

/**
 * Sends `count` UDP datagrams of 1000 pseudo-random bytes through a session to
 * service port `port` (one at a time, each echoed before the next) and returns
 * the sha256 of what was sent and of what came back.
 */
async function udpThrough(
  session: Connection,
  port: number,
  count: number,
  seed: number,
): Promise<{ sent: string; received: string }> {
  const replies: Uint8Array[] = [];
  const stop = session.onDatagram((packet) => {
    const ip = parseIp(packet);
    if (isPacketError(ip)) return;
    const udp = parseUdp(ip);
    if (!isPacketError(udp)) replies.push(udp.payload.slice());
  });
  const sent: Uint8Array[] = [];
  const src = parseIpAddress(AGENT_ADDRESS);
  const dst = parseIpAddress(SERVICE_ADDRESS);
  try {
    for (let i = 0; i < count; i++) {
      const payload = pseudoRandomBytes(1000, seed + i);
      const out = new Uint8Array(udpHeadersLength(src) + payload.length);
      writeUdpPacket(out, { src, dst, srcPort: 40_000, dstPort: port, payload });
      assert.ok(session.sendDatagram(out), `datagram ${i} queued`);
      sent.push(payload);
      await waitFor(() => replies.length > i, `echo of datagram ${i}`, 5_000);
    }
  } finally {
    stop();
  }
  const digest = (parts: Uint8Array[]) => sha256(new Uint8Array(parts.flatMap((p) => [...p])));
  return { sent: digest(sent), received: digest(replies) };
}

/** The serial number of the certificate a connection's peer presented. */
async function peerSerial(connection: Connection): Promise<string> {
  return (await summarizeCertificate(connection.peerCertificate!)).serialNumber;
}

/** An agent node in this process (relay path only), connected to `relay`. */
async function agentNode(relay: SocketAddress, identity: NodeIdentity): Promise<TestNode> {
  const agent = startNode(relay, identity, "agent", { relayOnly: true });
  await agent.link.start();
  return agent;
}

Deno.test("SIGHUP: a connector's rotated certificate serves new sessions while the live one keeps moving bytes; a broken key keeps the old identity", async () => {
  const org = await RotatingOrg.create("conn");
  const relayId = await org.issue("relay-1", "relay");
  const connId = await org.issue("conn-1", "connector", ["web"]);
  const aliceId = await org.issue("alice", "agent");
  const relay = Relay.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    ...relayId,
  });
  const echo = udpEcho();
  let connector: DaemonProcess | undefined;
  let agent: TestNode | undefined;
  try {
    connector = new DaemonProcess([
      "connector",
      "--service",
      "web",
      "--forward",
      `127.0.0.1:${echo.port}`,
      "--allow",
      "alice",
      "--relay",
      formatAddress(relay.address),
      "--relay-name",
      RELAY_NAME,
      "--cert",
      connId.certificateFile,
      "--key",
      connId.privateKeyFile,
      "--ca",
      connId.caFile,
      "--relay-only",
      "--admin-socket",
      `${org.dir}/connector.sock`,
    ]);
    await connector.record(/^publishing web/);
    agent = await agentNode(relay.address, aliceId);
    const first = (await agent.node.openSession("web")).connection!;
    const firstSerial = (await summarizeCertificateFile(connId.certificateFile)).serialNumber;
    assert.equal(await peerSerial(first), firstSerial);
    const before = await udpThrough(first, echo.port, 20, 1);
    assert.equal(before.received, before.sent);

    // Rotate: a new certificate and key for conn-1, in the same files, valid 800 days.
    await org.issue("conn-1", "connector", ["web"], 800);
    const rotated = await summarizeCertificateFile(connId.certificateFile);
    assert.notEqual(rotated.serialNumber, firstSerial);
    connector.kill("SIGHUP");
    const reloaded = await connector.record(/^reloaded /);
    assert.equal(reloaded.level, "INFO");
    assert.equal(
      reloaded.message.replaceAll('"', ""),
      `reloaded certificate conn-1 (serial ${rotated.serialNumber}, expires ${
        rotated.notAfter.slice(0, 10)
      })`,
    );

    // The live session is untouched: same connection, same bytes back.
    const after = await udpThrough(first, echo.port, 20, 100);
    assert.equal(after.received, after.sent);
    assert.equal(first.isClosed, false);
    // A new session handshakes with the new certificate.
    const second = (await agent.node.openSession("web")).connection!;
    assert.equal(await peerSerial(second), rotated.serialNumber);
    const onSecond = await udpThrough(second, echo.port, 5, 200);
    assert.equal(onSecond.received, onSecond.sent);

    // A key that does not match the certificate: error naming the file, old identity kept.
    const other = await org.issue("stranger", "connector", ["web"]);
    await Deno.copyFile(other.privateKeyFile, connId.privateKeyFile);
    connector.kill("SIGHUP");
    const failed = await connector.record(/^reload failed/);
    assert.equal(failed.level, "ERROR");
    assert.match(failed.message, new RegExp(`private key from ${connId.privateKeyFile}`));
    assert.equal(connector.exited, false);
    const third = (await agent.node.openSession("web")).connection!;
    assert.equal(await peerSerial(third), rotated.serialNumber);
    const onThird = await udpThrough(third, echo.port, 5, 300);
    assert.equal(onThird.received, onThird.sent);
    const still = await udpThrough(first, echo.port, 5, 400);
    assert.equal(still.received, still.sent);
  } finally {
    if (agent) await stopNode(agent);
    const code = connector ? await connector.stop("SIGTERM") : 0;
    echo.close();
    await relay.close();
    await org.cleanup();
    assert.equal(code, 0, connector?.stderr);
  }
});

Deno.test("Connector.reload: an agent removed from the access list loses its live session and is refused; the others keep theirs", async () => {
  const org = await RotatingOrg.create("acl");
  const relayId = await org.issue("relay-1", "relay");
  const connId = await org.issue("conn-1", "connector", ["web"]);
  const relay = Relay.start({ listen: { hostname: "127.0.0.1", port: 0 }, ...relayId });
  const echo = udpEcho();
  const agents: TestNode[] = [];
  const echoTarget = { hostname: "127.0.0.1", port: echo.port };
  const web = (allow: string[]) => [{ name: "web", forward: [echoTarget], allow }];
  let connector: Connector | undefined;
  try {
    connector = await Connector.start({
      identity: connId,
      relay: relay.address,
      relayName: RELAY_NAME,
      services: [{ name: "web", forward: [echoTarget], allow: ["alice", "bob"] }],
      bind: { hostname: "127.0.0.1", port: 0 },
      relayOnly: true,
    });
    const alice = await agentNode(relay.address, await org.issue("alice", "agent"));
    agents.push(alice);
    const bob = await agentNode(relay.address, await org.issue("bob", "agent"));
    agents.push(bob);
    const aliceSession = (await alice.node.openSession("web")).connection!;
    const bobSession = (await bob.node.openSession("web")).connection!;
    assert.equal((await udpThrough(bobSession, echo.port, 3, 1)).received.length, 64);

    const changes = await connector.reload({ identity: connId, services: web(["alice"]) });
    assert.deepEqual(changes, ["access list: alice"]);
    const closed = await Promise.race([
      bobSession.closed,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 1_000)),
    ]);
    assert.deepEqual(closed && { by: closed.by, reason: closed.reason }, {
      by: "peer",
      reason: "no longer in the access list",
    });
    await assert.rejects(
      bob.node.openSession("web"),
      (error: Error) =>
        error instanceof FatalRelayError &&
        // The wording of the access list's refusal is the connector's; the refusal is ours.
        error.message.startsWith("relay: connector conn-1 refused this agent: not in"),
    );
    const alive = await udpThrough(aliceSession, echo.port, 5, 10);
    assert.equal(alive.received, alive.sent);
    assert.equal(aliceSession.isClosed, false);

    // Nothing changed: an empty list of changes.
    assert.deepEqual(await connector.reload({ identity: connId, services: web(["alice"]) }), []);
  } finally {
    for (const agent of agents) await stopNode(agent);
    await connector?.close();
    echo.close();
    await relay.close();
    await org.cleanup();
  }
});

Deno.test("SIGHUP: a real connector re-reads its --config file: an agent removed from the access list loses its session", async () => {
  const org = await RotatingOrg.create("aclfile");
  const relayId = await org.issue("relay-1", "relay");
  const connId = await org.issue("conn-1", "connector", ["web"]);
  const relay = Relay.start({ listen: { hostname: "127.0.0.1", port: 0 }, ...relayId });
  const echo = udpEcho();
  const config = `${org.dir}/connector.toml`;
  const write = (allow: string[], cert = connId.certificateFile, key = connId.privateKeyFile) =>
    Deno.writeTextFile(
      config,
      [
        `relay = "${formatAddress(relay.address)}"`,
        `relay-name = "${RELAY_NAME}"`,
        `cert = "${cert}"`,
        `key = "${key}"`,
        `ca = "${connId.caFile}"`,
        "relay-only = true",
        `admin-socket = "${org.dir}/connector.sock"`,
        "[services.web]",
        `forward = ["127.0.0.1:${echo.port}"]`,
        `allow = [${allow.map((name) => `"${name}"`).join(", ")}]`,
      ].join("\n"),
    );
  const agents: TestNode[] = [];
  let connector: DaemonProcess | undefined;
  try {
    await write(["alice", "bob"]);
    connector = new DaemonProcess(["connector", "--config", config]);
    await connector.record(/^publishing web/);
    const alice = await agentNode(relay.address, await org.issue("alice", "agent"));
    agents.push(alice);
    const bob = await agentNode(relay.address, await org.issue("bob", "agent"));
    agents.push(bob);
    const aliceSession = (await alice.node.openSession("web")).connection!;
    const bobSession = (await bob.node.openSession("web")).connection!;
    const bobBefore = await udpThrough(bobSession, echo.port, 3, 1);
    assert.equal(bobBefore.received, bobBefore.sent);

    await write(["alice"]);
    connector.kill("SIGHUP");
    const reloaded = await connector.record(/^reloaded /);
    assert.equal(reloaded.message.replaceAll('"', ""), "reloaded access list: alice");
    const closed = await Promise.race([
      bobSession.closed,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 2_000)),
    ]);
    assert.deepEqual(closed && { by: closed.by, reason: closed.reason }, {
      by: "peer",
      reason: "no longer in the access list",
    });
    const alive = await udpThrough(aliceSession, echo.port, 5, 10);
    assert.equal(alive.received, alive.sent);

    // The identity moves to other files (same certificate): the certificate status and its
    // expiry follow the file the reload named.
    const socket = `${org.dir}/connector.sock`;
    const certificateOf = async () =>
      (await readStatus(socket) as { certificate: { file: string } }).certificate.file;
    assert.equal(await certificateOf(), connId.certificateFile);
    const [movedCert, movedKey] = [`${org.dir}/moved.crt`, `${org.dir}/moved.key`];
    await Deno.copyFile(connId.certificateFile, movedCert);
    await Deno.copyFile(connId.privateKeyFile, movedKey);
    await write(["alice"], movedCert, movedKey);
    connector.kill("SIGHUP");
    await connector.record(/^reloaded: nothing changed/);
    assert.equal(await certificateOf(), movedCert);

    // A file broken by a typo changes nothing: the error names the key, bob stays out.
    await Deno.writeTextFile(config, "max-sesions = 5\n" + (await Deno.readTextFile(config)));
    connector.kill("SIGHUP");
    const failed = await connector.record(/^reload failed/);
    assert.equal(failed.properties.error, `${config}: unknown key "max-sesions"`);
    assert.equal(connector.exited, false);
    await assert.rejects(
      bob.node.openSession("web"),
      (error: Error) => error instanceof FatalRelayError,
    );
  } finally {
    for (const agent of agents) await stopNode(agent);
    const code = connector ? await connector.stop("SIGTERM") : 0;
    echo.close();
    await relay.close();
    await org.cleanup();
    assert.equal(code, 0, connector?.stderr);
  }
});

Deno.test("Connector.reload refuses a certificate without the published service or from another CA, and keeps the old one", async () => {
  const org = await RotatingOrg.create("bad");
  const stranger = await RotatingOrg.create("stranger");
  const relayId = await org.issue("relay-1", "relay");
  const connId = await org.issue("conn-1", "connector", ["web"]);
  const relay = Relay.start({ listen: { hostname: "127.0.0.1", port: 0 }, ...relayId });
  const web = [{ name: "web", forward: [{ hostname: "127.0.0.1", port: 9 }], allow: ["*"] }];
  let connector: Connector | undefined;
  let agent: TestNode | undefined;
  try {
    connector = await Connector.start({
      identity: connId,
      relay: relay.address,
      relayName: RELAY_NAME,
      services: web,
      bind: { hostname: "127.0.0.1", port: 0 },
      relayOnly: true,
    });
    const serial = (await summarizeCertificateFile(connId.certificateFile)).serialNumber;
    const noWeb = await org.issue("conn-2", "connector", ["db"]);
    await assert.rejects(
      connector.reload({ identity: noWeb, services: web }),
      new IdentityCheckError(
        "services",
        `${noWeb.certificateFile} does not grant the published service web`,
      ),
    );
    const foreign = await stranger.issue("conn-1", "connector", ["web"]);
    await assert.rejects(
      connector.reload({ identity: { ...foreign, caFile: org.caFile }, services: web }),
      (error: Error) =>
        error.message.startsWith(
          `${foreign.certificateFile} (issuer "CN=ztna stranger CA") is not signed by the CA in ${org.caFile}`,
        ),
    );
    await assert.rejects(
      connector.reload({
        identity: { ...connId, caFile: `${org.dir}/missing.crt` },
        services: web,
      }),
      (error: Error) => error.message.includes(`${org.dir}/missing.crt`),
    );
    agent = await agentNode(relay.address, await org.issue("alice", "agent"));
    const session = (await agent.node.openSession("web")).connection!;
    assert.equal(await peerSerial(session), serial);
  } finally {
    if (agent) await stopNode(agent);
    await connector?.close();
    await relay.close();
    await org.cleanup();
    await stranger.cleanup();
  }
});

Deno.test("Relay.reload: new node connections get the new certificate; a connected node stays", async () => {
  const org = await RotatingOrg.create("relay");
  const relayId = await org.issue("relay-1", "relay");
  const connId = await org.issue("conn-1", "connector", ["web"]);
  const relay = Relay.start({ listen: { hostname: "127.0.0.1", port: 0 }, ...relayId });
  const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  const config = relayClientConfig(connId);
  try {
    const connect = async () => {
      const connection = client.connect({
        peer: relay.address,
        serverName: RELAY_NAME,
        config,
      });
      await connection.established;
      return connection;
    };
    const before = await connect();
    const first = (await summarizeCertificateFile(relayId.certificateFile)).serialNumber;
    assert.equal(await peerSerial(before), first);
    await org.issue("relay-1", "relay");
    const rotated = await summarizeCertificateFile(relayId.certificateFile);
    assert.deepEqual(await relay.reload(relayId), [
      `certificate relay-1 (serial ${rotated.serialNumber}, expires ${
        rotated.notAfter.slice(0, 10)
      })`,
    ]);
    const after = await connect();
    assert.equal(await peerSerial(after), rotated.serialNumber);
    assert.equal(before.isClosed, false);
    // A connector certificate is not a relay identity: refused, the relay serves on.
    await assert.rejects(
      relay.reload(connId),
      new IdentityCheckError("role", `${connId.certificateFile} grants role connector, not relay`),
    );
    const again = await connect();
    assert.equal(await peerSerial(again), rotated.serialNumber);
    for (const connection of [before, after, again]) connection.close();
  } finally {
    await client.close();
    config.free();
    await relay.close();
    await org.cleanup();
  }
});

Deno.test("SIGHUP: a real relay process reloads its rotated certificate; a reload that changed nothing says so", async () => {
  const org = await RotatingOrg.create("relay-process");
  const relayId = await org.issue("relay-1", "relay");
  const connId = await org.issue("conn-1", "connector", ["web"]);
  const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  const config = relayClientConfig(connId);
  const relay = DaemonProcess.relay(relayId, org.dir);
  try {
    const listening = await relay.record(/^listening on /);
    const peer = parseHostPort(String(listening.properties.address));
    const connect = async () => {
      const connection = client.connect({ peer, serverName: RELAY_NAME, config });
      await connection.established;
      return connection;
    };
    relay.kill("SIGHUP");
    assert.equal((await relay.record(/^reloaded/)).message, "reloaded: nothing changed");
    const before = await connect();
    await org.issue("relay-1", "relay");
    const rotated = await summarizeCertificateFile(relayId.certificateFile);
    relay.kill("SIGHUP");
    assert.equal(
      (await relay.record(/^reloaded/, 2)).message.replaceAll('"', ""),
      `reloaded certificate relay-1 (serial ${rotated.serialNumber}, expires ${
        rotated.notAfter.slice(0, 10)
      })`,
    );
    const after = await connect();
    assert.equal(await peerSerial(after), rotated.serialNumber);
    assert.equal(before.isClosed, false);
  } finally {
    const code = await relay.stop("SIGTERM");
    await client.close();
    config.free();
    await org.cleanup();
    assert.equal(code, 0, relay.stderr);
  }
});
