/**
 * The connector's kernel-forwarding mode end to end, in namespaces (root): relay, an agent
 * behind a NAT and a second one on the "internet" (both with the default inner address
 * 100.64.0.1), a connector with `--tun` and a target host on a link behind it. Traffic
 * goes agent → session → connector's TUN → kernel → target: ping, UDP echo, HTTP, a 50 MB
 * download with equal sha256 (both agents at once, to a remote target and to a loopback
 * one), per-session pool addresses seen by the target, refusals that reach nothing, and a
 * SIGTERM that leaves the ruleset and links exactly as before.
 */
import assert from "node:assert/strict";
import { createNatTopology, denoCommand, type Host, type Topology } from "../lib/netns/mod.ts";
import type { ConnectorStatus } from "../lib/connector/connector.ts";
import { makeTestOrg, RELAY_NAME } from "./support/nodes.ts";
import { pseudoRandomBytes, sha256 } from "./support/bytes.ts";
import { parseExposition, promtoolCheck } from "./support/metrics.ts";

const MAIN = new URL("../main.ts", import.meta.url);
const WEB_IP = "100.80.0.10";
const FILES_IP = "100.80.0.11";
const TARGET = "10.200.3.2";
const TUN = "ztnak0";
/** The connector's metrics endpoint, inside its namespace. */
const METRICS_PORT = 9465;
const BIG = pseudoRandomBytes(50 * 1024 * 1024, 11);
/** Answers every GET with the client's address, on 127.0.0.1:9090. */
const PEER_SERVER = "import http.server\n" +
  "class H(http.server.BaseHTTPRequestHandler):\n" +
  "  def do_GET(self):\n" +
  "    b=self.client_address[0].encode();self.send_response(200)\n" +
  "    self.send_header('Content-Length',str(len(b)));self.end_headers();self.wfile.write(b)\n" +
  "  def log_message(self,*a): pass\n" +
  "s=http.server.ThreadingHTTPServer(('127.0.0.1',9090),H);print('READY',flush=True)\n" +
  "s.serve_forever()";
/** Listens on HOST:9999 (TCP and UDP) and appends whatever arrives to FILE. */
const LISTENER = "import socket,select,sys\n" +
  "h,f=sys.argv[1],sys.argv[2]\n" +
  "t=socket.socket();t.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n" +
  "t.bind((h,9999));t.listen(8)\n" +
  "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.bind((h,9999))\n" +
  "print('READY',flush=True)\n" +
  "while True:\n" +
  "  r,_,_=select.select([t,u],[],[])\n" +
  "  for s in r:\n" +
  "    if s is t:\n" +
  "      c,a=t.accept();c.close();open(f,'a').write('TCP %s\\n'%(a,))\n" +
  "    else:\n" +
  "      d,a=u.recvfrom(2048);open(f,'a').write('UDP %s\\n'%(a,))";
/** Connects by TCP and by connected UDP to HOST:9999; prints how each ended. */
const REFUSED_CLIENT = "import socket,sys\n" +
  "h=sys.argv[1]\n" +
  "try:\n" +
  "  socket.create_connection((h,9999),timeout=5);print('tcp connected')\n" +
  "except ConnectionRefusedError: print('tcp refused')\n" +
  "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.settimeout(5);u.connect((h,9999))\n" +
  "u.send(b'x')\n" +
  "try:\n" +
  "  u.recv(100);print('udp answered')\n" +
  "except ConnectionRefusedError: print('udp refused')";

/** Runs `command` in `host`, asserting exit 0; resolves with stdout. */
async function must(net: Topology, host: Host, command: string[], timeoutMs = 30_000) {
  const result = await net.exec(host, command, { timeoutMs });
  assert.equal(result.code, 0, `${command.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

/** What the connector's host has that the kernel mode must leave as it was. */
async function hostState(net: Topology, host: Host): Promise<string> {
  const rules = await must(net, host, ["nft", "list", "ruleset"]);
  const links = await must(net, host, ["ip", "-o", "link", "show"]);
  const routes = await must(net, host, ["ip", "-4", "route", "show", "table", "all"]);
  return [rules, links.replace(/ state \S+/g, ""), routes].join("\n--\n");
}

Deno.test("kernel mode: ping, UDP, HTTP and 50 MB through the kernel; two agents with one inner address; refusals reach nothing; SIGTERM removes the TUN and the table", async () => {
  const topology = await createNatTopology("zkern");
  const org = await makeTestOrg("kernel");
  const dir = await Deno.makeTempDir({ prefix: "ztna-kernel-" });
  const { net, internet, relay, agent, connector: connectorHost, addresses } = topology;
  try {
    const agent2 = await net.addHost("agent2");
    await net.link(agent2, internet, { aAddress: "198.18.4.2/24", bAddress: "198.18.4.1/24" });
    await net.route(agent2, "default", "198.18.4.1");
    const target = await net.addHost("target");
    await net.link(target, connectorHost, {
      aAddress: `${TARGET}/24`,
      bAddress: "10.200.3.1/24",
    });
    for (const root of ["target", "local"]) {
      await Deno.mkdir(`${dir}/${root}`);
      await Deno.writeTextFile(`${dir}/${root}/index.html`, `page from the ${root} web server\n`);
      await Deno.writeFile(`${dir}/${root}/big.bin`, BIG);
    }
    const relayId = await org.issue("relay-1", "relay");
    const connectorId = await org.issue("conn-1", "connector", ["web", "files"]);
    const alice = await org.issue("alice", "agent");
    const bob = await org.issue("bob", "agent");

    const relayProcess = net.spawnDeno(relay, new URL("./support/relay_main.ts", import.meta.url), [
      ...["0.0.0.0", "4433", relayId.certPath, relayId.keyPath, org.caPath],
    ]);
    assert.equal(await relayProcess.nextLine(), "READY 4433");
    const servers = [
      net.spawn(target, [
        "python3",
        "-u",
        "-m",
        "http.server",
        "--bind",
        TARGET,
        "--directory",
        `${dir}/target`,
        "8080",
      ]),
      net.spawn(connectorHost, [
        "python3",
        "-u",
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        `${dir}/local`,
        "8080",
      ]),
    ];
    for (const server of servers) assert.match(await server.nextLine(), /Serving HTTP/);
    const echo = net.spawnDeno(target, new URL("./support/udp_echo_main.ts", import.meta.url), [
      "serve",
      "7007",
    ]);
    assert.equal(await echo.nextLine(), "READY");
    const peer = net.spawn(connectorHost, ["python3", "-u", "-c", PEER_SERVER]);
    assert.equal(await peer.nextLine(), "READY");
    const seen = `${dir}/seen.txt`;
    await Deno.writeTextFile(seen, "");
    for (const [host, address] of [[target, TARGET], [connectorHost, "127.0.0.1"]] as const) {
      const listener = net.spawn(host, ["python3", "-u", "-c", LISTENER, address, seen]);
      assert.equal(await listener.nextLine(), "READY");
    }

    const common = [
      ...["--relay", `${addresses.relay}:4433`, "--relay-name", RELAY_NAME, "--ca", org.caPath],
    ];
    const connectorArgs = [
      ...["connector", "--service", "web", "--allow", "alice,bob"],
      ...["--forward", `${TARGET}:8080`, "--forward", `${TARGET}:7007`],
      ...["--forward", "127.0.0.1:9090"],
      ...["--publish", "files=127.0.0.1:8080;allow=bob"],
      ...["--tun", TUN, "--cert", connectorId.certPath, "--key", connectorId.keyPath, ...common],
      ...["--admin-socket", `${dir}/connector.sock`, "--metrics", `127.0.0.1:${METRICS_PORT}`],
    ];
    const before = await hostState(net, connectorHost);

    // Replies from the target host are forwarded into the TUN: refused while v-target forwards nothing.
    const refusedStart = await net.exec(connectorHost, denoCommand(MAIN, connectorArgs));
    assert.equal(refusedStart.code, 1);
    assert.match(
      refusedStart.stderr,
      /target 10\.200\.3\.2 is reached by v-target, whose IPv4 forwarding is off.*net\.ipv4\.conf\.v-target\.forwarding=1/,
    );
    assert.equal(
      await hostState(net, connectorHost),
      before,
      "a refused start left something behind",
    );
    await must(net, connectorHost, ["sysctl", "-qw", "net.ipv4.conf.v-target.forwarding=1"]);
    const stateBefore = await hostState(net, connectorHost);

    const connector = net.spawn(connectorHost, denoCommand(MAIN, connectorArgs), {
      stderr: "capture",
    });
    assert.match(await connector.nextLine(20_000), /connector publishing web, files/);
    const tables = await must(net, connectorHost, ["nft", "list", "tables"]);
    assert.match(tables, new RegExp(`table ip ztna_${TUN}`));
    const agents = [
      net.spawn(
        agent,
        denoCommand(MAIN, [
          ...["agent", "--tun", "ztna0", "--service", `web=${WEB_IP}`],
          ...["--cert", alice.certPath, "--key", alice.keyPath, ...common],
        ]),
      ),
      net.spawn(
        agent2,
        denoCommand(MAIN, [
          ...[
            "agent",
            "--tun",
            "ztna0",
            "--service",
            `web=${WEB_IP}`,
            "--service",
            `files=${FILES_IP}`,
          ],
          ...["--cert", bob.certPath, "--key", bob.keyPath, ...common],
        ]),
      ),
    ];
    for (const a of agents) await a.nextLine(20_000);
    for (const host of [agent, agent2]) {
      assert.match(
        await must(net, host, ["ip", "-4", "addr", "show", "ztna0"]),
        /inet 100\.64\.0\.1\//,
      );
    }
    const status = async () => {
      const out = await must(
        net,
        connectorHost,
        denoCommand(MAIN, ["status", "--socket", `${dir}/connector.sock`, "--json"]),
      );
      return JSON.parse(out) as ConnectorStatus;
    };
    const kernelRefused = async () => {
      const out = await must(net, connectorHost, [
        "nft",
        "-j",
        "list",
        "counter",
        "ip",
        `ztna_${TUN}`,
        "refused",
      ]);
      return (JSON.parse(out).nftables as { counter?: { packets: number } }[])
        .find((item) => item.counter)!.counter!.packets;
    };

    // ICMP echo: to the service's first target, answered by the target host's kernel.
    const ping = await must(net, agent, ["ping", "-c", "3", "-i", "0.2", "-W", "2", WEB_IP]);
    assert.match(ping, /3 packets transmitted, 3 received/);

    // UDP: the target sees the connector's address on its link (MASQUERADE).
    const udp = await must(
      net,
      agent,
      denoCommand(new URL("./support/udp_echo_main.ts", import.meta.url), ["ask", WEB_IP, "7007"]),
    );
    assert.match(udp.trim(), /^10\.200\.3\.1:\d+$/);

    // HTTP: each service's targets (port 8080 is the target host for web, loopback for files).
    assert.equal(
      await must(net, agent, ["curl", "-sS", "--max-time", "10", `http://${WEB_IP}:8080/`]),
      "page from the target web server\n",
    );
    assert.equal(
      await must(net, agent2, ["curl", "-sS", "--max-time", "10", `http://${FILES_IP}:8080/`]),
      "page from the local web server\n",
    );

    // Loopback target: delivered locally; it sees each session's own pool address.
    const seenBy = await Promise.all(
      [agent, agent2].map((host) =>
        must(net, host, ["curl", "-sS", "--max-time", "10", `http://${WEB_IP}:9090/`])
      ),
    );
    for (const address of seenBy) assert.match(address, /^100\.127\.\d+\.\d+$/);
    assert.notEqual(seenBy[0], seenBy[1], "two agents with one inner address share a pool address");

    // 50 MB, both agents at once: alice from the target host, bob from the loopback server.
    const digests = await Promise.all([
      must(net, agent, [
        "sh",
        "-c",
        `curl -sS --max-time 120 http://${WEB_IP}:8080/big.bin | sha256sum`,
      ], 150_000),
      must(net, agent2, [
        "sh",
        "-c",
        `curl -sS --max-time 120 http://${FILES_IP}:8080/big.bin | sha256sum`,
      ], 150_000),
    ]);
    for (const digest of digests) assert.equal(digest.split(" ")[0], sha256(BIG));

    // Into the TUN unasked: the target host pings a session's pool address; the table drops
    // and counts each echo (not a reply to anything), so none reaches a session.
    const dropsBefore = await kernelRefused();
    await must(net, target, ["ip", "route", "add", "100.127.0.0/16", "via", "10.200.3.1"]);
    const unasked = await net.exec(target, ["ping", "-c", "3", "-i", "0.2", "-W", "1", seenBy[0]]);
    assert.match(unasked.stdout, /3 packets transmitted, 0 received/);
    assert.equal(await kernelRefused(), dropsBefore + 3, "the table did not drop the 3 echoes");

    // A port no service forwards: refused at once (RST, ICMP port unreachable), reaching nothing.
    const beforeRefusal = await status();
    const guardBefore = await kernelRefused();
    assert.equal(
      await must(net, agent, ["python3", "-c", REFUSED_CLIENT, WEB_IP]),
      "tcp refused\nudp refused\n",
    );
    const afterRefusal = await status();
    assert.equal(afterRefusal.kernel!.refused.port - beforeRefusal.kernel!.refused.port, 2);
    assert.equal(await kernelRefused(), guardBefore, "a refused packet reached the kernel");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await Deno.readTextFile(seen), "", "a listener on port 9999 saw a packet");

    const kernel = afterRefusal.kernel!;
    assert.equal(kernel.sessions, 3);
    assert.equal(kernel.nftablesDropped, dropsBefore + 3, "status: the table's counter");
    // Every byte of the two downloads came out of the TUN in packets of at most the TUN MTU.
    const minimumOut = Math.ceil((2 * BIG.length) / 1240);
    assert.ok(kernel.packetsOut >= minimumOut, `packets out ${kernel.packetsOut} < ${minimumOut}`);
    assert.ok(kernel.forwarded > 1_000, `forwarded ${kernel.forwarded}`);
    assert.equal(afterRefusal.terminator.packetsIn, 0, "the userspace terminator saw packets");
    assert.equal(kernel.dropped.writeFailed, 0);
    // The TUN's counters: every packet forwarded is one TUN write.
    const tun = afterRefusal.tun!;
    assert.deepEqual([tun.name, tun.mtu], [TUN, 1240]);
    assert.equal(tun.counters.packetsWritten, kernel.forwarded);
    // Offloads on: the downloads left the kernel as TSO super-packets, split before sending.
    assert.match(tun.offloads, /^csum tso4 tso6/);
    assert.ok(tun.counters.gsoTcp4Reads > 0, `${tun.counters.gsoTcp4Reads} TSO reads`);
    assert.ok(tun.counters.segmentsSplit > tun.counters.gsoTcp4Reads, "super-packets split");
    assert.equal(tun.counters.readsDropped, 0);
    const text = await must(
      net,
      connectorHost,
      denoCommand(MAIN, ["status", "--socket", `${dir}/connector.sock`]),
    );
    assert.match(
      text,
      new RegExp(
        `TUN ${TUN} \\(mtu 1240, offloads csum tso4 tso6[^)]*\\): .* wrote ${kernel.forwarded} packets`,
      ),
    );
    assert.match(
      text,
      new RegExp(
        `kernel mode: pool 100\\.127\\.0\\.0/16, nftables table ip ztna_${TUN}, 3 sessions; ${kernel.forwarded} of ${kernel.packetsIn} packets.*; nftables dropped ${kernel.nftablesDropped}$`,
        "m",
      ),
    );
    // The same counters on /metrics (nothing crosses the TUN while the nodes idle), promtool-clean.
    const exposition = await must(net, connectorHost, [
      ...["curl", "-sS", `http://127.0.0.1:${METRICS_PORT}/metrics`],
    ]);
    assert.deepEqual(await promtoolCheck(exposition), { code: 0, output: "" });
    const metrics = parseExposition(exposition);
    assert.equal(metrics.get("ztna_kernel_sessions"), 3);
    assert.equal(metrics.get(`ztna_kernel_packets_total{direction="forwarded"}`), kernel.forwarded);
    assert.equal(metrics.get(`ztna_kernel_refused_total{cause="port"}`), kernel.refused.port);
    assert.equal(metrics.get("ztna_tun_packets_written_total"), kernel.forwarded);
    assert.equal(metrics.get("ztna_kernel_nftables_dropped_total"), kernel.nftablesDropped);

    // SIGTERM: the agents first, then the connector; its table and TUN are gone.
    for (const a of agents) assert.equal((await a.stop()).code, 0);
    assert.equal((await connector.stop()).code, 0);
    assert.equal(await hostState(net, connectorHost), stateBefore);
  } finally {
    await topology.net.destroy();
    await org.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});
