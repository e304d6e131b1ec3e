/**
 * Relay mode end to end, on real hosts: network namespaces with the relay on a
 * "public" network and the agent and the connector each behind its own NAT
 * (iptables MASQUERADE). The connector and the agent run as `ztna` commands.
 * Needs root.
 */
import assert from "node:assert/strict";
import { createNatTopology, denoCommand, type NatTopology } from "./support/netns.ts";
import { makeTestOrg, RELAY_NAME, type TestOrg } from "./support/nodes.ts";
import type { Child } from "./support/process.ts";

const MAIN = new URL("../main.ts", import.meta.url);
const SERVICE_IP = "100.80.0.10";

interface Running {
  topology: NatTopology;
  org: TestOrg;
  relayPort: number;
  connector: Child;
  agent: Child;
  connectorLine: string;
  agentLine: string;
}

/** Starts relay, UDP echo target, connector and agent; `body` runs with them up. */
async function withTunnel(body: (r: Running) => Promise<void>): Promise<void> {
  const topology = await createNatTopology("ze2e");
  const org = await makeTestOrg("e2e");
  try {
    const relayId = await org.issue("relay-1", "relay");
    const connectorId = await org.issue("conn-1", "connector", ["web"]);
    const agentId = await org.issue("alice", "agent");
    const { net, relay, connector: connectorHost, agent: agentHost, addresses } = topology;
    const relayProcess = net.spawnDeno(relay, new URL("./support/relay_main.ts", import.meta.url), [
      "0.0.0.0",
      "4433",
      relayId.certPath,
      relayId.keyPath,
      org.caPath,
    ]);
    const ready = await relayProcess.nextLine();
    const relayPort = Number(/^READY (\d+)$/.exec(ready)?.[1]);
    assert.equal(relayPort, 4433, ready);
    const echo = net.spawnDeno(
      connectorHost,
      new URL("./support/udp_echo_main.ts", import.meta.url),
      ["serve", "7007"],
    );
    assert.equal(await echo.nextLine(), "READY");
    const common = [
      "--relay",
      `${addresses.relay}:${relayPort}`,
      "--relay-name",
      RELAY_NAME,
      "--ca",
      org.caPath,
    ];
    const connector = net.spawn(
      connectorHost,
      denoCommand(MAIN, [
        "connector",
        "--service",
        "web",
        "--forward",
        "127.0.0.1:7007",
        "--allow",
        "alice",
        "--cert",
        connectorId.certPath,
        "--key",
        connectorId.keyPath,
        ...common,
      ]),
    );
    const connectorLine = await connector.nextLine(20_000);
    const agent = net.spawn(
      agentHost,
      denoCommand(MAIN, [
        "agent",
        "--tun",
        "ztna0",
        "--service",
        `web=${SERVICE_IP}`,
        "--cert",
        agentId.certPath,
        "--key",
        agentId.keyPath,
        ...common,
      ]),
    );
    const agentLine = await agent.nextLine(20_000);
    await body({ topology, org, relayPort, connector, agent, connectorLine, agentLine });
  } finally {
    await topology.net.destroy();
    await org.cleanup();
  }
}

Deno.test("relay mode through two NATs: QAD, ping and UDP through the tunnel", async () => {
  await withTunnel(async ({ topology, connectorLine, agentLine }) => {
    const { net, agent, addresses } = topology;
    // QAD: each node learns exactly its NAT's public address.
    assert.match(
      connectorLine,
      new RegExp(`relay sees it at ${addresses.natBPublic.replaceAll(".", "\\.")}:\\d+$`),
    );
    assert.match(
      agentLine,
      new RegExp(`relay sees it at ${addresses.natAPublic.replaceAll(".", "\\.")}:\\d+$`),
    );

    const ping = await net.exec(agent, ["ping", "-c", "5", "-i", "0.2", "-W", "2", SERVICE_IP]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /5 packets transmitted, 5 received/);
    const avg = Number(/= [\d.]+\/([\d.]+)\//.exec(ping.stdout)?.[1]);
    assert.ok(avg > 0 && avg < 100, `average RTT ${avg} ms`);

    // UDP through the tunnel: the target sees the connector's own local address as the sender.
    const udp = await net.execDeno(agent, new URL("./support/udp_echo_main.ts", import.meta.url), [
      "ask",
      SERVICE_IP,
      "7007",
    ]);
    assert.equal(udp.code, 0, udp.stderr);
    assert.match(udp.stdout.trim(), /^127\.0\.0\.1:\d+$/);

    // A port the connector does not forward is refused at once (ICMP port unreachable).
    const refused = await net.execDeno(
      agent,
      new URL("./support/udp_echo_main.ts", import.meta.url),
      [
        "ask",
        SERVICE_IP,
        "9999",
      ],
    );
    assert.notEqual(refused.code, 0);
  });
});
