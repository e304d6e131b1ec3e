/**
 * Seeing the direct path and defending it, with real `ztna` processes behind
 * two port-restricted-cone NATs: `ztna status` on both ends shows the path,
 * its round-trip time and the bytes per path; punches captured on the
 * internet and replayed with their original source (an on-path attacker),
 * and forged ones, are refused and counted, and the session stays put.
 */
import type { ConnectorStatus } from "../lib/connector/connector.ts";
import assert from "node:assert/strict";
import { denoCommand } from "../lib/netns/mod.ts";
import { type LabSites, SERVICE_IP, withP2pLab } from "./support/p2p_lab.ts";

const SITES: LabSites = {
  agent: { kind: "port-restricted-cone" },
  connector: { kind: "port-restricted-cone" },
};
const MAIN = new URL("../main.ts", import.meta.url);

/** Resends the last captured punch `count` times, spoofing its source; then `count` forged ones. */
const REPLAY = `
import sys
from scapy.all import rdpcap, send, IP, UDP, Raw
pkts = [p for p in rdpcap(sys.argv[1]) if UDP in p and bytes(p[UDP].payload)[:1] == b'\\x30']
p = pkts[-1]
payload = bytes(p[UDP].payload)
count = int(sys.argv[2])
send(IP(src=p[IP].src, dst=p[IP].dst)/UDP(sport=p[UDP].sport, dport=p[UDP].dport)/Raw(payload), count=count, verbose=False)
forged = bytearray(payload)
forged[12:16] = b'\\xff\\xff\\xff\\x00'
send(IP(src=p[IP].src, dst=p[IP].dst)/UDP(sport=p[UDP].sport, dport=p[UDP].dport)/Raw(bytes(forged)), count=count, verbose=False)
print(len(pkts))
`;

Deno.test("ztna status shows each end's direct path with bytes per path; replayed and forged punches change nothing", async () => {
  await withP2pLab("p2pst", SITES, async (lab) => {
    const { net } = lab.lab;
    // Record the connector's punches towards the agent as they cross the internet.
    const file = `${lab.webRoot}/punches.pcap`;
    const tcpdump = net.spawn(lab.lab.internet, [
      ...["tcpdump", "-Z", "root", "-i", "any", "-U", "--immediate-mode", "-w", file],
      `udp and src host ${lab.connectorSite.publicAddress} and dst host ${lab.agentSite.publicAddress}`,
    ], { stderr: "capture" });
    await tcpdump.stderr!.waitFor(/listening on/, 5_000);
    const direct = await lab.direct(10_000);
    assert.ok(direct);
    const ping = await net.exec(lab.agentHost, ["ping", "-c", "20", "-i", "0.05", SERVICE_IP]);
    assert.match(ping.stdout, /20 received/);
    await tcpdump.stop();

    // The agent measured its NAT against the relay's STUN service (in the background).
    let agent = await lab.status("agent");
    for (let i = 0; i < 50 && agent.nat === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      agent = await lab.status("agent");
    }
    assert.deepEqual(agent.nat, {
      classic: "port-restricted cone",
      mapping: "endpoint-independent",
      filtering: "address-and-port-dependent",
      public: [agent.relay.observed],
    });
    assert.equal(agent.role, "agent");
    assert.deepEqual(agent.services, ["web"]);
    assert.equal(agent.relay.connected, true);
    assert.match(agent.relay.observed, new RegExp(`^${lab.agentSite.publicAddress}:\\d+$`));
    assert.equal(agent.sessions.length, 1);
    const session = agent.sessions[0];
    assert.equal(session.path, `direct ${direct}`);
    assert.equal(session.peer, "conn-1");
    const active = session.paths.find((p) => p.active)!;
    assert.equal(active.path, direct);
    assert.equal(active.state, "validated");
    assert.ok(active.packetsReceived >= 20 && active.bytesReceived >= 20 * 84, "pings came back");
    const relayPath = session.paths.find((p) => p.path === "relay")!;
    assert.equal(relayPath.active, false);
    assert.equal(session.counters.migrations, 1);
    assert.ok(typeof session.rttMs === "number" && session.rttMs < 50, `rtt ${session.rttMs}`);
    // Its TUN: offloads on by default; the 20 echo replies are all that was written to it.
    assert.deepEqual([agent.tun!.name, agent.tun!.mtu], ["ztna0", 1240]);
    assert.match(agent.tun!.offloads, /^csum tso4 tso6/);
    assert.equal(agent.tun!.counters.packetsWritten, 20);

    const connector = await lab.status("connector");
    assert.equal(connector.sessions[0].path.split(":")[0], `direct ${lab.agentSite.publicAddress}`);
    assert.equal(connector.sessions[0].peer, "alice");

    // The human view, aligned like `tailscale status`.
    const human = await net.exec(
      lab.agentHost,
      denoCommand(MAIN, ["status", "--socket", `${lab.webRoot}/agent.sock`]),
    );
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^agent for web; relay 198\.18\.1\.2:4433 \(rtt [\d.]+ ms/);
    assert.match(human.stdout, /\nSERVICE\s+PEER\s+PATH\s+RTT\s+FOR\s+SENT\s+RECEIVED\n/);
    assert.match(
      human.stdout,
      new RegExp(`\\nweb\\s+conn-1\\s+direct ${direct.replaceAll(".", "\\.")}`),
    );
    assert.match(human.stdout, /\* path\s+direct /);

    // An on-path attacker replays captured punches with their source, and forges some.
    const refused = agent.sessions[0].counters.punchesRefused;
    const replay = await net.exec(lab.lab.internet, ["python3", "-c", REPLAY, file, "10"]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.ok(Number(replay.stdout.trim()) > 0, "punches were captured");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = (await lab.status("agent")).sessions[0];
    const counted = after.counters.punchesRefused;
    assert.equal(
      counted.replayed + counted.stale - refused.replayed - refused.stale,
      10,
      `replays refused: ${JSON.stringify(counted)}`,
    );
    assert.equal(counted["bad-mac"] - refused["bad-mac"], 10, "forged punches refused");
    assert.equal(after.path, `direct ${direct}`, "the session did not move");
    assert.equal(after.counters.migrations, 1);
    const again = await net.exec(lab.agentHost, ["ping", "-c", "5", "-i", "0.05", SERVICE_IP]);
    assert.match(again.stdout, /5 received/);

    // One HTTP request: the connector's userspace TCP shows the one connection it accepted.
    const page = await net.exec(lab.agentHost, [
      ...["curl", "-sS", "--max-time", "10", `http://${SERVICE_IP}:8080/`],
    ]);
    assert.equal(page.stdout, "hello through ztna\n", page.stderr);
    const tcp = (await lab.status("connector") as ConnectorStatus).terminator.tcp;
    assert.equal(tcp.connectionsAccepted, 1);
    assert.equal(tcp.connectionsReset + tcp.connectionsTimedOut + tcp.outOfOrderDropped, 0);
    const connectorText = await net.exec(
      lab.connectorHost,
      denoCommand(MAIN, ["status", "--socket", `${lab.webRoot}/connector.sock`]),
    );
    assert.match(
      connectorText.stdout,
      /\nuserspace TCP: 1 connection accepted \(\d open, 0 reset, 0 timed out\); segments \d+ in/,
    );
  });
});

Deno.test("ztna probe ping: replies via the relay first, then over the direct path", async () => {
  await withP2pLab("p2ppg", SITES, async (lab) => {
    const { net } = lab.lab;
    const run = await net.exec(
      lab.agentHost,
      denoCommand(MAIN, [
        ...["probe", "ping", "web", "--count", "8", "--interval-ms", "100", "--json"],
        ...["--relay", `${lab.lab.relayAddress}:4433`, "--relay-name", "relay.test"],
        ...["--cert", `${lab.org.dir}/alice.crt`, "--key", `${lab.org.dir}/alice.key`],
        ...["--ca", lab.org.caPath],
      ]),
      { timeoutMs: 30_000 },
    );
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split("\n").map((line) => JSON.parse(line));
    const summary = lines.pop();
    assert.equal(lines.length, 8);
    assert.deepEqual(lines.map((reply) => reply.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.ok(lines.every((reply) => typeof reply.rttMs === "number"), run.stdout);
    assert.equal(lines[0].path, "via relay");
    const direct = `direct ${lab.connectorSite.publicAddress}:`;
    assert.ok(lines.at(-1).path.startsWith(direct), `last reply: ${lines.at(-1).path}`);
    // Once direct, it stays direct.
    const first = lines.findIndex((reply) => reply.path.startsWith("direct"));
    assert.ok(lines.slice(first).every((reply) => reply.path.startsWith(direct)));
    assert.deepEqual(
      { received: summary.received, sent: summary.sent, connector: summary.connector },
      { received: 8, sent: 8, connector: "conn-1" },
    );
    assert.ok(summary.directAfterMs !== null && summary.directAfterMs < 1_000, run.stdout);
  });
});
