/**
 * Relays by host name: `HOST:PORT` parsing, resolution (system and injected
 * resolvers), skipping addresses the socket cannot reach, trying each address
 * in turn, re-resolving on every reconnect (a relay that moved to another
 * loopback address is found again), and the CLI: `--relay localhost:PORT`
 * without `--relay-name`, an unresolvable name (exit 1), an IP literal without
 * `--relay-name` (exit 2), and `probe quic` / `probe nat-type` by name.
 */
import assert from "node:assert/strict";
import { formatAddress, type SocketAddress } from "../lib/net/address.ts";
import {
  canReach,
  HostNotFoundError,
  NoUsableAddressError,
  parseHostNamePort,
  reachableAddresses,
  resolveHostPort,
  type Resolver,
  systemResolver,
} from "../lib/net/resolve.ts";
import { nodeOptions } from "../lib/cli/node_options.ts";
import { UsageError } from "../lib/cli/errors.ts";
import type { NodeIdentity } from "../lib/node/configs.ts";
import { relayClientConfig } from "../lib/node/configs.ts";
import { Node } from "../lib/node/node.ts";
import { FatalRelayError, RelayLink } from "../lib/node/relay_link.ts";
import { createCa, grantNames, issueIdentity, writeIdentityFiles } from "../lib/pki/mod.ts";
import { Endpoint } from "../lib/quic/endpoint.ts";
import { Relay } from "../lib/relay/relay.ts";
import { StunServer } from "../lib/relay/stun_server.ts";
import { waitFor } from "./support/bytes.ts";
import { assertExit, MAIN, ztna } from "./support/cli.ts";

/** A name no resolver knows (RFC 6761 reserves `.invalid`). */
const UNRESOLVABLE = "relay.nonexistent.invalid";

/** A CA in a temp folder issuing identities whose certificates may hold host names. */
interface NamesOrg {
  dir: string;
  caFile: string;
  issue(
    name: string,
    role: "relay" | "connector" | "agent",
    services?: string[],
    hosts?: string[],
  ): Promise<NodeIdentity>;
  cleanup(): Promise<void>;
}

async function makeOrg(): Promise<NamesOrg> {
  const dir = await Deno.makeTempDir({ prefix: "ztna-relay-names-" });
  const ca = await createCa({ commonName: "ztna relay names CA" });
  const { certPath: caFile } = await writeIdentityFiles(ca, dir, "ca");
  return {
    dir,
    caFile,
    async issue(name, role, services = [], hosts = []) {
      const identity = await issueIdentity(ca, {
        commonName: name,
        ...grantNames(name, role, services, hosts),
      });
      const files = await writeIdentityFiles(identity, dir, name);
      return { certificateFile: files.certPath, privateKeyFile: files.keyPath, caFile };
    },
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** A relay on `hostname` (port 0: any) whose certificate holds `localhost` and `relay.test`. */
function startRelay(identity: NodeIdentity, hostname: string, port = 0): Relay {
  return Relay.start({ listen: { hostname, port }, ...identity });
}

/** A resolver answering from `answers()` and counting its calls (a thrown answer is a failure). */
function scriptedResolver(answers: () => string[] | Error): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolver = (name: string) => {
    calls.push(name);
    const answer = answers();
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  };
  return Object.assign(resolver, { calls });
}

/** Settles like `promise`, or rejects naming `what` after `ms`. */
async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A `ztna` daemon in its own process, its output collected. */
class Daemon {
  stdout = "";
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];

  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MAIN, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>, append: (text: string) => void) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) append(text);
    };
    this.#pumps = [
      pump(this.#child.stdout, (text) => (this.stdout += text)),
      pump(this.#child.stderr, (text) => (this.stderr += text)),
    ];
  }

  /** Stops the process (SIGTERM) and waits for it and its output; returns its exit status. */
  async stop(): Promise<number> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // It exited already.
    }
    const { code } = await this.#child.status;
    await Promise.all(this.#pumps);
    return code;
  }
}

Deno.test("relay names: HOST:PORT parsing, resolution, reachable families", async () => {
  assert.deepEqual(parseHostNamePort("relay.example.com:4433"), {
    hostname: "relay.example.com",
    port: 4433,
  });
  assert.deepEqual(parseHostNamePort("localhost:4433"), { hostname: "localhost", port: 4433 });
  assert.deepEqual(parseHostNamePort("192.0.2.7:4433"), { hostname: "192.0.2.7", port: 4433 });
  assert.deepEqual(parseHostNamePort("[2001:db8::1]:4433"), {
    hostname: "2001:db8::1",
    port: 4433,
  });
  assert.throws(() => parseHostNamePort("127.1:4433"), /invalid IP address "127.1"/);
  assert.throws(() => parseHostNamePort("bad_name.example:4433"), /invalid host name "bad_name/);
  assert.throws(() => parseHostNamePort("relay.example.com:70000"), /invalid port/);
  assert.throws(() => parseHostNamePort("relay.example.com"), /expected HOST:PORT/);

  // The system resolver reads /etc/hosts (where localhost is 127.0.0.1).
  const local = await resolveHostPort({ hostname: "localhost", port: 9 });
  assert.deepEqual(local[0], { hostname: "127.0.0.1", port: 9 });
  await assert.rejects(
    systemResolver(UNRESOLVABLE),
    (e: Error) =>
      e instanceof HostNotFoundError && e.hostname === UNRESOLVABLE &&
      e.message === `cannot resolve host name "${UNRESOLVABLE}": no such host (ENOTFOUND)`,
  );
  // An IP literal is not resolved; answers are deduplicated and normalised (v4-mapped to IPv4).
  const never = scriptedResolver(() => new Error("must not be called"));
  assert.deepEqual(await resolveHostPort({ hostname: "192.0.2.7", port: 1 }, never), [
    { hostname: "192.0.2.7", port: 1 },
  ]);
  assert.deepEqual(never.calls, []);
  const answers = scriptedResolver(() => ["2001:db8::5", "::ffff:192.0.2.9", "192.0.2.9"]);
  assert.deepEqual(await resolveHostPort({ hostname: "relay.test", port: 4433 }, answers), [
    { hostname: "2001:db8::5", port: 4433 },
    { hostname: "192.0.2.9", port: 4433 },
  ]);

  const v4: SocketAddress = { hostname: "192.0.2.9", port: 1 };
  const v6: SocketAddress = { hostname: "2001:db8::5", port: 1 };
  assert.deepEqual(
    [
      canReach({ hostname: "0.0.0.0", port: 0 }, 4, v4),
      canReach({ hostname: "0.0.0.0", port: 0 }, 4, v6),
      canReach({ hostname: "::", port: 0 }, 6, v4),
      canReach({ hostname: "::", port: 0 }, 6, v6),
      canReach({ hostname: "::1", port: 0 }, 6, v4),
      canReach({ hostname: "::1", port: 0 }, 6, v6),
    ],
    [true, false, true, true, false, true],
  );
  assert.deepEqual(
    await reachableAddresses(
      { hostname: "relay.test", port: 4433 },
      { hostname: "127.0.0.1", port: 5000 },
      4,
      answers,
    ),
    [{ hostname: "192.0.2.9", port: 4433 }],
  );
  await assert.rejects(
    reachableAddresses(
      { hostname: "relay.test", port: 4433 },
      { hostname: "127.0.0.1", port: 5000 },
      4,
      scriptedResolver(() => ["2001:db8::5", "2001:db8::6"]),
    ),
    (e: Error) =>
      e instanceof NoUsableAddressError &&
      e.message ===
        "relay.test:4433: none of its addresses (2001:db8::5, 2001:db8::6) can be reached from an IPv4 socket",
  );
});

Deno.test("relay names: --relay-name defaults to the host name; an IP literal needs it", () => {
  const identity = { cert: "c.crt", key: "c.key", ca: "ca.crt" };
  const named = nodeOptions({ ...identity, relay: "relay.example.com.:4433" });
  assert.deepEqual(named.relay, { hostname: "relay.example.com.", port: 4433 });
  assert.equal(named.relayName, "relay.example.com");
  assert.equal(
    nodeOptions({ ...identity, relay: "localhost:4433", "relay-name": "relay.test" }).relayName,
    "relay.test",
  );
  assert.throws(
    () => nodeOptions({ ...identity, relay: "[::1]:4433" }),
    (e: Error) =>
      e instanceof UsageError &&
      e.message ===
        "missing required option --relay-name: --relay ::1 is an IP address, so give the name in the relay's certificate",
  );
  assert.throws(
    () => nodeOptions({ ...identity, relay: "relay.example.com" }),
    (e: Error) => e instanceof UsageError && e.message.startsWith("--relay: invalid address"),
  );
});

Deno.test("relay names: a node dials localhost by name and measures its NAT at the address it reached", async () => {
  const org = await makeOrg();
  const relayId = await org.issue("relay-1", "relay", [], ["localhost", "relay.test"]);
  const relay = startRelay(relayId, "127.0.0.1");
  const stun = StunServer.start({ endpoint: relay.endpoint });
  const options = nodeOptions({
    relay: `localhost:${relay.address.port}`,
    cert: "unused",
    key: "unused",
    ca: "unused",
  });
  // The node's default socket is the wildcard (dual-stack where the host has IPv6).
  const node = new Node({
    identity: await org.issue("conn-1", "connector", ["web"]),
    relay: options.relay,
    relayName: options.relayName,
    role: "connector",
  });
  try {
    assert.equal(options.relayName, "localhost");
    await node.start();
    assert.deepEqual(node.link.relayAddress, { hostname: "127.0.0.1", port: relay.address.port });
    assert.equal(node.status([]).relay.address, `127.0.0.1:${relay.address.port}`);
    await waitFor(() => node.natSummary !== null, "the NAT check against the resolved relay");
  } finally {
    await node.close();
    await stun.close();
    await relay.close();
    await org.cleanup();
  }
});

Deno.test("relay names: each address is tried in turn; unreachable families are skipped", async () => {
  const org = await makeOrg();
  const relayId = await org.issue("relay-1", "relay", [], ["relay.test"]);
  const agentId = await org.issue("alice", "agent");
  const relay = startRelay(relayId, "127.0.0.1");
  // Nothing answers QUIC on 127.0.0.3 at the relay's port; ::1 cannot be reached from an IPv4 socket.
  const resolver = scriptedResolver(() => ["::1", "127.0.0.3", "127.0.0.1"]);
  const config = relayClientConfig(agentId);
  const endpoint = Endpoint.bind({ address: { hostname: "127.0.0.1", port: 0 } });
  const link = new RelayLink({
    endpoint,
    relay: { hostname: "relay.test", port: relay.address.port },
    resolver,
    serverName: "relay.test",
    config,
    role: "agent",
    handshakeTimeoutMs: 400,
  });
  try {
    const started = performance.now();
    // Trying only the first reachable address would retry it for ever: fail after 5 s instead.
    await withDeadline(link.start(), 5_000, "the link to connect via its second address");
    const waited = performance.now() - started;
    assert.deepEqual(link.relayAddress, { hostname: "127.0.0.1", port: relay.address.port });
    assert.equal(link.observed, formatAddress(endpoint.localAddress));
    assert.deepEqual(resolver.calls, ["relay.test"]);
    assert.ok(waited >= 400 && waited < 3_000, `connected after ${waited} ms`);
  } finally {
    link.close();
    await endpoint.close();
    config.free();
    await relay.close();
  }

  // Only addresses of a family the socket cannot reach: a clear, fatal error at start.
  const v6only = new Node({
    identity: agentId,
    relay: { hostname: "relay.test", port: 4433 },
    resolveRelay: scriptedResolver(() => ["::1"]),
    relayName: "relay.test",
    role: "agent",
    bind: { hostname: "127.0.0.1", port: 0 },
  });
  try {
    await assert.rejects(
      v6only.start(),
      (e: Error) =>
        e instanceof FatalRelayError &&
        e.message ===
          "relay: relay.test:4433: none of its addresses (::1) can be reached from an IPv4 socket",
    );
  } finally {
    await v6only.close();
    await org.cleanup();
  }
});

Deno.test("relay names: every reconnect resolves again; a relay that moved is found there", async () => {
  const org = await makeOrg();
  const relayId = await org.issue("relay-1", "relay", [], ["relay.test"]);
  let relay = startRelay(relayId, "127.0.0.1");
  const port = relay.address.port;
  let answer: string[] | Error = ["127.0.0.1"];
  const resolver = scriptedResolver(() => answer);
  const node = new Node({
    identity: await org.issue("alice", "agent"),
    relay: { hostname: "relay.test", port },
    resolveRelay: resolver,
    relayName: "relay.test",
    role: "agent",
    bind: { hostname: "127.0.0.1", port: 0 },
    relayOnly: true,
  });
  try {
    await node.start();
    assert.deepEqual(node.link.relayAddress, { hostname: "127.0.0.1", port });
    assert.equal(resolver.calls.length, 1);

    // The relay goes away and its name stops resolving for a while: logged and retried.
    answer = new HostNotFoundError("relay.test", "no such host (ENOTFOUND)");
    await relay.close();
    await waitFor(() => !node.link.isConnected, "the node to notice the relay left", 15_000);
    await waitFor(() => resolver.calls.length >= 3, "two failed resolutions", 15_000);
    assert.equal(node.link.isConnected, false);

    // It comes back on another address; the name now says so.
    relay = startRelay(relayId, "127.0.0.2", port);
    answer = ["127.0.0.2"];
    await waitFor(() => node.link.reconnects === 1, "the node to reconnect", 15_000);
    assert.deepEqual(node.link.relayAddress, { hostname: "127.0.0.2", port });
    assert.equal(node.link.isConnected, true);
    assert.equal(node.status([]).relay.address, `127.0.0.2:${port}`);
  } finally {
    await node.close();
    await relay.close();
    await org.cleanup();
  }
});

Deno.test("relay names: the CLI dials names and says which name does not resolve", async () => {
  const org = await makeOrg();
  const relayId = await org.issue("relay-1", "relay", [], ["localhost"]);
  const connId = await org.issue("conn-1", "connector", ["web"]);
  const aliceId = await org.issue("alice", "agent");
  const relay = startRelay(relayId, "127.0.0.1");
  const stun = StunServer.start({ endpoint: relay.endpoint });
  const port = relay.address.port;
  // A connector dialling the relay by name, without --relay-name (its certificate holds localhost).
  const connector = new Daemon([
    "connector",
    "--service",
    "web",
    "--forward",
    "127.0.0.1:9",
    "--allow",
    "alice",
    "--relay",
    `localhost:${port}`,
    "--relay-only",
    "--cert",
    connId.certificateFile,
    "--key",
    connId.privateKeyFile,
    "--ca",
    org.caFile,
    "--admin-socket",
    `${org.dir}/connector.sock`,
  ]);
  const alice = ["--cert", aliceId.certificateFile, "--key", aliceId.privateKeyFile];
  try {
    await waitFor(
      () => connector.stdout.includes("connector publishing web"),
      "the connector to publish web",
      20_000,
    );

    const unresolvable = await ztna([
      "probe",
      "ping",
      "web",
      "--relay",
      `${UNRESOLVABLE}:4433`,
      ...alice,
      "--ca",
      org.caFile,
    ]);
    assertExit(unresolvable, 1);
    assert.equal(
      unresolvable.stderr.trim(),
      `ztna probe: relay: cannot resolve host name "${UNRESOLVABLE}": no such host (ENOTFOUND)`,
    );
    const connectorRun = await ztna([
      "connector",
      "--service",
      "web",
      "--forward",
      "127.0.0.1:9",
      "--allow",
      "*",
      "--relay",
      `${UNRESOLVABLE}:4433`,
      "--cert",
      connId.certificateFile,
      "--key",
      connId.privateKeyFile,
      "--ca",
      org.caFile,
      "--admin-socket",
      `${org.dir}/connector.sock`,
    ]);
    assertExit(connectorRun, 1);
    assert.equal(
      connectorRun.stderr.trim(),
      `ztna connector: relay: cannot resolve host name "${UNRESOLVABLE}": no such host (ENOTFOUND)`,
    );

    const literal = await ztna(["probe", "ping", "web", "--relay", `127.0.0.1:${port}`]);
    assertExit(literal, 2);
    assert.equal(
      literal.stderr.split("\n")[0],
      "ztna probe: missing required option --relay-name: --relay 127.0.0.1 is an IP address, " +
        "so give the name in the relay's certificate",
    );

    // The relay name defaults to "localhost", which the relay's certificate holds.
    const ping = await ztna([
      "probe",
      "ping",
      "web",
      "--relay",
      `localhost:${port}`,
      ...alice,
      "--ca",
      org.caFile,
      "--relay-only",
      "--count",
      "1",
      "--json",
    ]);
    assertExit(ping, 0);
    const summary = JSON.parse(ping.stdout.trim().split("\n").at(-1)!);
    assert.deepEqual(summary, {
      service: "web",
      connector: "conn-1",
      sent: 1,
      received: 1,
      directAfterMs: null,
    });

    const quic = await ztna([
      "probe",
      "quic",
      `localhost:${port}`,
      "--ca",
      org.caFile,
      "--alpn",
      "ztna-relay/1",
      ...alice,
      "--json",
    ]);
    assertExit(quic, 0);
    const report = JSON.parse(quic.stdout);
    assert.equal(report.target, `localhost:${port}`);
    assert.equal(report.serverName, "localhost");
    assert.equal(report.peerAddress, `127.0.0.1:${port}`);

    const quicMissing = await ztna([
      "probe",
      "quic",
      `${UNRESOLVABLE}:${port}`,
      "--ca",
      org.caFile,
    ]);
    assertExit(quicMissing, 1);
    assert.equal(
      quicMissing.stderr.trim(),
      `ztna probe: ${UNRESOLVABLE}:${port}: cannot resolve host name "${UNRESOLVABLE}": ` +
        "no such host (ENOTFOUND)",
    );

    const nat = await ztna(["probe", "nat-type", "--relay", `localhost:${port}`, "--json"]);
    assertExit(nat, 0);
    const result = JSON.parse(nat.stdout);
    assert.equal(result.serverAnswered, true);
    assert.deepEqual(result.server, { hostname: "127.0.0.1", port });
  } finally {
    assert.equal(await connector.stop(), 0, connector.stderr);
    await stun.close();
    await relay.close();
    await org.cleanup();
  }
});
