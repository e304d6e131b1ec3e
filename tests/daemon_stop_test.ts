/**
 * SIGTERM ends a daemon cleanly (real processes, loopback): the other end of
 * each of its connections and sessions hears a CONNECTION_CLOSE within 1 s
 * (not an idle timeout), and the process exits 0. The agent's TUN removal
 * needs root and a namespace, and is not tested here.
 */
import assert from "node:assert/strict";
import { formatAddress, parseHostPort } from "../lib/net/address.ts";
import { relayClientConfig } from "../lib/node/configs.ts";
import type { CloseReason } from "../lib/quic/errors.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { Relay } from "../lib/relay/relay.ts";
import { waitFor } from "./support/bytes.ts";
import { DaemonProcess } from "./support/daemon_process.ts";
import {
  makeTestOrg,
  nodeIdentity,
  RELAY_NAME,
  startNode,
  stopNode,
  type TestNode,
} from "./support/nodes.ts";

/**
 * Resolves once the daemon serves its admin socket at `path`: only then does it
 * handle SIGTERM (before, the signal's default action kills it uncleanly).
 */
async function signalReady(daemon: DaemonProcess, path: string): Promise<void> {
  await waitFor(() => {
    if (daemon.exited) throw new Error(`daemon exited:\n${daemon.stderr}`);
    try {
      return Deno.statSync(path).isSocket === true;
    } catch {
      return false;
    }
  }, `the admin socket ${path}`);
}

/** How a connection ended, or "still open" if it did not within `ms`. */
function closedWithin(closed: Promise<CloseReason>, ms: number): Promise<CloseReason | string> {
  return Promise.race([
    closed,
    new Promise<string>((resolve) => setTimeout(() => resolve("still open"), ms)),
  ]);
}

Deno.test("SIGTERM: the relay closes every node's connection with CONNECTION_CLOSE within 1 s and exits 0", async () => {
  const org = await makeTestOrg("stop-relay");
  const relayId = await nodeIdentity(org, "relay-1", "relay");
  const connId = await nodeIdentity(org, "conn-1", "connector", ["web"]);
  const client = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  const config = relayClientConfig(connId);
  const relay = DaemonProcess.relay(relayId, org.dir);
  try {
    const listening = await relay.record(/^listening on /);
    const connection = client.connect({
      peer: parseHostPort(String(listening.properties.address)),
      serverName: RELAY_NAME,
      config,
    });
    await connection.established;
    await signalReady(relay, `${org.dir}/relay.sock`);
    relay.kill("SIGTERM");
    const end = await closedWithin(connection.closed, 1_000);
    assert.deepEqual(end, {
      by: "peer",
      isApplication: true,
      code: 0,
      reason: "endpoint closing",
    });
    assert.equal(await relay.stop(), 0, relay.stderr);
  } finally {
    await relay.stop("SIGKILL");
    await client.close();
    config.free();
    await org.cleanup();
  }
});

Deno.test("SIGTERM: the connector closes its sessions with CONNECTION_CLOSE within 1 s and exits 0", async () => {
  const org = await makeTestOrg("stop-conn");
  const relayId = await nodeIdentity(org, "relay-1", "relay");
  const connId = await nodeIdentity(org, "conn-1", "connector", ["web"]);
  const aliceId = await nodeIdentity(org, "alice", "agent");
  const relay = Relay.start({ listen: { hostname: "127.0.0.1", port: 0 }, ...relayId });
  let agent: TestNode | undefined;
  const connector = new DaemonProcess([
    "connector",
    "--service",
    "web",
    "--forward",
    "127.0.0.1:9",
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
  try {
    await connector.record(/^publishing web/);
    agent = startNode(relay.address, aliceId, "agent", { relayOnly: true });
    await agent.link.start();
    const session = (await agent.node.openSession("web")).connection!;
    await signalReady(connector, `${org.dir}/connector.sock`);
    connector.kill("SIGTERM");
    const end = await closedWithin(session.closed, 1_000);
    assert.deepEqual(end, {
      by: "peer",
      isApplication: true,
      code: 0,
      reason: "connector shutting down",
    });
    assert.equal(await connector.stop(), 0, connector.stderr);
  } finally {
    await connector.stop("SIGKILL");
    if (agent) await stopNode(agent);
    await relay.close();
    await org.cleanup();
  }
});
