/**
 * `--metrics`: a real relay and connector (`ztna` processes) and an agent-role
 * node on loopback, a session carrying UDP through the relay; each daemon's
 * `/metrics` passes `promtool check metrics` and shows values the test knows
 * (nodes by role, the relay's forwarding counter equal to its status, each
 * certificate's notAfter, the session on the relay path, the connector's UDP
 * flow); a real Prometheus server scrapes the relay; `ztna status` prints the
 * relay's state; the certificate expiring in 10 days is warned about; bad and
 * busy `--metrics` addresses end the command with exits 2 and 1.
 */
import assert from "node:assert/strict";
import { readStatus } from "../lib/admin/client.ts";
import type { RelayStatus } from "../lib/admin/relay_status.ts";
import type { ConnectorStatus } from "../lib/connector/connector.ts";
import { registerNodeMetrics } from "../lib/metrics/node_metrics.ts";
import { daemonRegistry } from "../lib/metrics/registry.ts";
import { MetricsServer } from "../lib/metrics/server.ts";
import type { SocketAddress } from "../lib/net/address.ts";
import { parseIpAddress, udpHeadersLength, writeUdpPacket } from "../lib/packet/mod.ts";
import { CertificateExpiry } from "../lib/pki/expiry.ts";
import { waitFor } from "./support/bytes.ts";
import { assertExit, MAIN, ztna } from "./support/cli.ts";
import { Daemon, parseExposition, promtoolCheck, scrape } from "./support/metrics.ts";
import { makeTestOrg, nodeIdentity, RELAY_NAME, startNode, stopNode } from "./support/nodes.ts";

const DAY_MS = 86_400_000;
const DATAGRAMS = 20;
const ECHO_SOURCE_PORT = 40_000;

/** A date `days` (and an hour) from now, whole seconds (what a certificate can hold). */
function daysFromNow(days: number): Date {
  return new Date(Math.floor((Date.now() + days * DAY_MS + 3_600_000) / 1000) * 1000);
}

/** `deno run` arguments for `ztna ...args`. */
const ztnaArgs = (...args: string[]) => ["run", "--allow-all", "--unstable-net", MAIN, ...args];

/** A UDP echo server on loopback. */
function udpEcho(): { address: SocketAddress; close(): void } {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  (async () => {
    try {
      for await (const [data, from] of socket) await socket.send(data, from);
    } catch {
      // Closed.
    }
  })();
  return {
    address: { hostname: "127.0.0.1", port: (socket.addr as Deno.NetAddr).port },
    close: () => socket.close(),
  };
}

/** An IPv4/UDP packet from the agent's tunnel address to the service's port `port`. */
function udpPacket(port: number, payload: Uint8Array): Uint8Array {
  const src = parseIpAddress("100.64.0.2");
  const out = new Uint8Array(udpHeadersLength(src) + payload.length);
  writeUdpPacket(out, {
    src,
    dst: parseIpAddress("100.80.0.10"),
    srcPort: ECHO_SOURCE_PORT,
    dstPort: port,
    payload,
  });
  return out;
}

/** A free TCP port on loopback (listened on, then released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Scrapes `url`, checks it with promtool (exit 0, no complaints), and parses it. */
async function checkedScrape(url: string, who: string): Promise<Map<string, number>> {
  const text = await scrape(url);
  const lint = await promtoolCheck(text);
  assert.deepEqual(lint, { code: 0, output: "" }, `promtool on the ${who}'s metrics`);
  return parseExposition(text);
}

/**
 * Reads the relay's forwarding counter from its status and its metrics until
 * both stay put across one scrape (keep-alives may cross at any time).
 */
async function stableForwarded(
  socket: string,
  url: string,
): Promise<{ status: number; metric: number }> {
  for (let attempt = 0;; attempt++) {
    const before = (await readStatus(socket) as RelayStatus).stats.datagramsForwarded;
    const metric = parseExposition(await scrape(url)).get("ztna_relay_forwarded_packets_total")!;
    const after = (await readStatus(socket) as RelayStatus).stats.datagramsForwarded;
    if (before === after || attempt === 20) return { status: after, metric };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The session lines of an exposition (what changes when a packet comes or goes). */
function sessionLines(text: string): string {
  return text.split("\n").filter((line) => line.startsWith("ztna_session_")).join("\n");
}

/** Runs Prometheus scraping `target` every second; resolves with its API's base URL. */
function startPrometheus(dir: string, target: string): { api: string; daemon: Daemon } {
  const config = `${dir}/prometheus.yml`;
  Deno.writeTextFileSync(
    config,
    [
      "global:",
      "  scrape_interval: 1s",
      "  evaluation_interval: 1s",
      "scrape_configs:",
      "  - job_name: ztna-relay",
      "    static_configs:",
      `      - targets: ["${target}"]`,
      "",
    ].join("\n"),
  );
  const port = freePort();
  const daemon = new Daemon("prometheus", [
    `--config.file=${config}`,
    `--storage.tsdb.path=${dir}/tsdb`,
    `--web.listen-address=127.0.0.1:${port}`,
  ]);
  return { api: `http://127.0.0.1:${port}/api/v1`, daemon };
}

/** What Prometheus answers for `query`: label sets (without job and instance) and values. */
async function query(api: string, promql: string): Promise<Record<string, string>[]> {
  const response = await fetch(`${api}/query?query=${encodeURIComponent(promql)}`);
  const body = await response.json() as {
    status: string;
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  assert.equal(body.status, "success");
  return body.data.result.map(({ metric, value }) => {
    const { job: _job, instance: _instance, ...labels } = metric;
    return { ...labels, value: value[1] };
  });
}

Deno.test("metrics: relay, connector and agent on loopback pass promtool with known values; Prometheus scrapes the relay", async () => {
  const org = await makeTestOrg("metrics");
  const relayExpiry = daysFromNow(200);
  const connectorExpiry = daysFromNow(10);
  const agentExpiry = daysFromNow(365);
  const relayId = await nodeIdentity(org, "relay-1", "relay", [], relayExpiry);
  const connectorId = await nodeIdentity(org, "conn-1", "connector", ["echo"], connectorExpiry);
  const agentId = await nodeIdentity(org, "alice", "agent", [], agentExpiry);
  const echo = udpEcho();
  const daemons: Daemon[] = [];
  let agent: ReturnType<typeof startNode> | undefined;
  let agentMetrics: MetricsServer | undefined;
  let prometheus: Daemon | undefined;
  try {
    const relaySocket = `${org.dir}/relay.sock`;
    const relay = new Daemon(
      Deno.execPath(),
      ztnaArgs(
        ...["relay", "--listen", "127.0.0.1:0", "--no-stun", "--admin-socket", relaySocket],
        ...["--cert", relayId.certificateFile, "--key", relayId.privateKeyFile],
        ...["--ca", relayId.caFile, "--metrics", "127.0.0.1:0"],
      ),
    );
    daemons.push(relay);
    const relayUrl = (await relay.waitFor(/metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1];
    const relayPort = Number((await relay.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
    const relayAddress = { hostname: "127.0.0.1", port: relayPort };

    const connectorSocket = `${org.dir}/connector.sock`;
    const connector = new Daemon(
      Deno.execPath(),
      ztnaArgs(
        ...["connector", "--service", "echo", "--forward", `127.0.0.1:${echo.address.port}`],
        ...["--allow", "alice", "--relay", `127.0.0.1:${relayPort}`, "--relay-name", RELAY_NAME],
        ...["--cert", connectorId.certificateFile, "--key", connectorId.privateKeyFile],
        ...["--ca", connectorId.caFile, "--relay-only", "--admin-socket", connectorSocket],
        ...["--metrics", "127.0.0.1:0"],
      ),
    );
    daemons.push(connector);
    const connectorUrl =
      (await connector.waitFor(/metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1];

    // The certificate expiring in 10 days is warned about; the relay's, in 200, is not.
    const warning = await connector.waitFor(
      /the certificate (\S+) expires in (\d+) days, at (\S+): renew it/,
    );
    assert.deepEqual(warning.slice(1), [
      connectorId.certificateFile,
      "10",
      connectorExpiry.toISOString(),
    ]);
    assert.doesNotMatch(relay.stderr, /the certificate .* expire/);

    // The agent-role node, with the registry `ztna agent --metrics` serves.
    agent = startNode(relayAddress, agentId, "agent", { relayOnly: true });
    await agent.node.start();
    const node = agent.node;
    agentMetrics = MetricsServer.listen(
      { hostname: "127.0.0.1", port: 0 },
      daemonRegistry(
        new CertificateExpiry(agentId.certificateFile),
        (registry) =>
          registerNodeMetrics(registry, {
            status: () => node.status(["echo"]),
            endpointStats: () => node.endpoint.stats,
          }),
      ),
    );
    const session = await node.openSession("echo");
    const replies: Uint8Array[] = [];
    session.connection!.onDatagram((packet) => void replies.push(packet));
    for (let i = 0; i < DATAGRAMS; i++) {
      await session.connection!.sendDatagram(
        udpPacket(echo.address.port, new TextEncoder().encode(`ping ${i}`)),
      );
    }
    await waitFor(() => replies.length === DATAGRAMS, `${DATAGRAMS} echoes`);

    // The relay.
    const relayMetrics = await checkedScrape(relayUrl, "relay");
    assert.equal(relayMetrics.get('ztna_relay_nodes{role="agent"}'), 1);
    assert.equal(relayMetrics.get('ztna_relay_nodes{role="connector"}'), 1);
    assert.equal(relayMetrics.get('ztna_relay_service_connectors{service="echo"}'), 1);
    assert.equal(relayMetrics.get("ztna_relay_sessions"), 1);
    assert.equal(relayMetrics.get("ztna_relay_sessions_opened_total"), 1);
    assert.equal(relayMetrics.get('ztna_relay_dropped_packets_total{reason="rate_limited"}'), 0);
    assert.equal(relayMetrics.get("ztna_relay_node_connections_total"), 2);
    assert.equal(relayMetrics.get("ztna_quic_connections_accepted_total"), 2);
    assert.equal(relayMetrics.get("ztna_quic_handshakes_refused_total"), 0);
    assert.equal(
      relayMetrics.get("ztna_certificate_expiry_timestamp_seconds"),
      relayExpiry.getTime() / 1000,
    );
    assert.ok(relayMetrics.has("process_resident_memory_bytes"), "process metrics");
    const forwarded = await stableForwarded(relaySocket, relayUrl);
    assert.equal(forwarded.metric, forwarded.status);
    assert.ok(forwarded.status >= 2 * DATAGRAMS, `${forwarded.status} forwarded`);

    // The connector.
    const connectorMetrics = await checkedScrape(connectorUrl, "connector");
    const conn = await readStatus(connectorSocket) as ConnectorStatus;
    assert.equal(connectorMetrics.get("ztna_relay_link_up"), 1);
    assert.equal(connectorMetrics.get("ztna_relay_reconnects_total"), 0);
    assert.equal(connectorMetrics.get('ztna_sessions{service="echo"}'), 1);
    assert.equal(
      connectorMetrics.get('ztna_session_path{kind="relay",peer="alice",service="echo"}'),
      1,
    );
    assert.equal(
      connectorMetrics.get('ztna_session_path{kind="direct",peer="alice",service="echo"}'),
      0,
    );
    assert.equal(connectorMetrics.get("ztna_connector_udp_flows"), 1);
    assert.equal(connectorMetrics.get("ztna_connector_packets_total"), DATAGRAMS);
    assert.equal(
      connectorMetrics.get('ztna_connector_refused_total{reason="udp_session_limit"}'),
      0,
    );
    assert.equal(
      connectorMetrics.get("ztna_connector_tcp_buffer_budget_bytes"),
      conn.terminator.tcpBufferBudget,
    );
    assert.equal(
      connectorMetrics.get("ztna_connector_tcp_accepted_total"),
      conn.terminator.tcp.connectionsAccepted,
    );
    assert.equal(
      connectorMetrics.get("ztna_certificate_expiry_timestamp_seconds"),
      connectorExpiry.getTime() / 1000,
    );
    assert.equal(conn.certificate?.daysLeft, 10);
    assert.equal(conn.certificate?.notAfter, connectorExpiry.toISOString());

    // The agent: its session's bytes equal what its status says, path by path.
    // Status and scrape agree once no packet arrived between two scrapes (keep-alives, ACKs).
    let agentText = await scrape(agentMetrics.url);
    let agentStatus = node.status(["echo"]);
    for (let attempt = 0; attempt < 20; attempt++) {
      const again = await scrape(agentMetrics.url);
      const stable = sessionLines(again) === sessionLines(agentText);
      agentText = again;
      if (stable) break;
      agentStatus = node.status(["echo"]);
    }
    assert.deepEqual(await promtoolCheck(agentText), { code: 0, output: "" });
    const agentValues = parseExposition(agentText);
    const relayPath = agentStatus.sessions[0].paths.find((p) => p.path === "relay")!;
    const labels = 'path="relay",peer="conn-1",service="echo"';
    assert.equal(
      agentValues.get(`ztna_session_packets_total{direction="sent",${labels}}`),
      relayPath.packetsSent,
    );
    assert.equal(
      agentValues.get(`ztna_session_packets_total{direction="received",${labels}}`),
      relayPath.packetsReceived,
    );
    assert.equal(
      agentValues.get('ztna_session_path{kind="relay",peer="conn-1",service="echo"}'),
      1,
    );
    assert.equal(
      agentValues.get('ztna_session_rtt_seconds{peer="conn-1",service="echo"}'),
      agentStatus.sessions[0].rttMs! / 1000,
    );
    assert.equal(
      agentValues.get("ztna_certificate_expiry_timestamp_seconds"),
      agentExpiry.getTime() / 1000,
    );

    // `ztna status` for the relay: the human view.
    const text = await ztna(["status", "--socket", relaySocket]);
    assertExit(text, 0);
    const lines = text.stdout.split("\n");
    assert.equal(
      lines[0],
      `relay on 127.0.0.1:${relayPort}: 2 nodes (1 agent, 1 connector), 1 session`,
    );
    assert.match(
      lines[1],
      new RegExp(
        `^certificate ${relayId.certificateFile} valid until ${relayExpiry.toISOString()} \\((199|200) days\\)$`,
      ),
    );
    assert.match(text.stdout, /\nSERVICE {2}CONNECTORS\necho {5}conn-1\n/);
    assert.match(text.stdout, /\n[0-9a-f]{16} {2}echo {5}alice {2}conn-1 {5}open /);

    // A real Prometheus server scrapes the relay.
    const started = startPrometheus(org.dir, new URL(relayUrl).host);
    prometheus = started.daemon;
    let nodes: Record<string, string>[] = [];
    const deadline = performance.now() + 30_000;
    while (nodes.length < 2 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      nodes = await query(started.api, "ztna_relay_nodes").catch(() => []);
    }
    assert.deepEqual(
      nodes.sort((a, b) => a.role.localeCompare(b.role)),
      [
        { __name__: "ztna_relay_nodes", role: "agent", value: "1" },
        { __name__: "ztna_relay_nodes", role: "connector", value: "1" },
      ],
      prometheus.stderr,
    );
  } finally {
    const stopped = await prometheus?.stop();
    assert.ok(stopped === undefined || stopped.success, prometheus?.stderr);
    await agentMetrics?.close();
    if (agent) await stopNode(agent);
    for (const daemon of daemons.reverse()) await daemon.stop();
    echo.close();
    await org.cleanup();
  }
});

Deno.test("metrics: a bad --metrics is a usage error (2); a busy one fails with one clear line (1)", async () => {
  const org = await makeTestOrg("metrics-cli");
  const relayId = await nodeIdentity(org, "relay-1", "relay");
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const relay = (metrics: string) =>
      ztna([
        ...["relay", "--listen", "127.0.0.1:0", "--no-stun", "--admin-socket", `${org.dir}/r.sock`],
        ...["--cert", relayId.certificateFile, "--key", relayId.privateKeyFile],
        ...["--ca", relayId.caFile, "--metrics", metrics],
      ]);
    const bad = await relay("localhost");
    assertExit(bad, 2);
    assert.match(
      bad.stderr,
      /^ztna relay: invalid --metrics 'localhost': invalid address "localhost": expected HOST:PORT or \[IPv6\]:PORT$/m,
    );
    const inUse = await relay(`127.0.0.1:${busy.addr.port}`);
    assertExit(inUse, 1);
    assert.match(
      inUse.stderr,
      new RegExp(
        `^ztna relay: cannot serve metrics on 127\\.0\\.0\\.1:${busy.addr.port}: address already in use \\(give another --metrics\\)$`,
        "m",
      ),
    );
    const connector = await ztna([
      ...["connector", "--service", "web", "--forward", "127.0.0.1:80", "--allow", "*"],
      ...["--relay", "127.0.0.1:1", "--relay-name", RELAY_NAME, "--cert", "c", "--key", "k"],
      ...["--ca", "ca", "--metrics", "127.0.0.1:99999"],
    ]);
    assertExit(connector, 2);
    assert.match(connector.stderr, /^ztna connector: invalid --metrics '127\.0\.0\.1:99999': /m);
  } finally {
    busy.close();
    await org.cleanup();
  }
});
