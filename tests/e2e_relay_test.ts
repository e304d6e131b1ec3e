/**
 * Relay mode end to end, on real hosts: network namespaces with the relay on a
 * "public" network and the agent and the connector each behind its own NAT
 * (iptables MASQUERADE). The connector and the agent run as `ztna` commands.
 * Needs root.
 */
import assert from "node:assert/strict";
import { type Child, createNatTopology, denoCommand, type NatTopology } from "../lib/netns/mod.ts";
import { makeTestOrg, RELAY_NAME, type TestOrg } from "./support/nodes.ts";
import { pseudoRandomBytes, sha256 } from "./support/bytes.ts";

const MAIN = new URL("../main.ts", import.meta.url);
const SERVICE_IP = "100.80.0.10";
const PAGE = "<html><body>hello through ztna</body></html>\n";
/** A TCP server that needs half-close: it answers only after the client's FIN. */
const HALF_CLOSE_SERVER = "import hashlib,socket\n" +
  "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n" +
  "s.bind(('127.0.0.1',9090));s.listen(8);print('READY')\n" +
  "while True:\n" +
  "  c,_=s.accept();h=hashlib.sha256()\n" +
  "  while True:\n" +
  "    d=c.recv(65536)\n" +
  "    if not d: break\n" +
  "    h.update(d)\n" +
  "  c.sendall(h.hexdigest().encode());c.close()";
/** 50 MB of pseudo-random bytes for the TCP transfer. */
const BIG = pseudoRandomBytes(50 * 1024 * 1024, 7);

interface Running {
  topology: NatTopology;
  org: TestOrg;
  relayPort: number;
  connector: Child;
  agent: Child;
  connectorLine: string;
  agentLine: string;
  /** Stops the relay process (waiting for it to exit) and starts a new one on the same port. */
  restartRelay(downMs: number): Promise<void>;
}

/** Starts relay, UDP echo target, connector and agent; `body` runs with them up. */
async function withTunnel(body: (r: Running) => Promise<void>): Promise<void> {
  const topology = await createNatTopology("ze2e");
  const org = await makeTestOrg("e2e");
  const webRoot = await Deno.makeTempDir({ prefix: "ztna-web-" });
  try {
    await Deno.writeTextFile(`${webRoot}/index.html`, PAGE);
    await Deno.writeFile(`${webRoot}/big.bin`, BIG);
    const relayId = await org.issue("relay-1", "relay");
    const connectorId = await org.issue("conn-1", "connector", ["web"]);
    const agentId = await org.issue("alice", "agent");
    const { net, relay, connector: connectorHost, agent: agentHost, addresses } = topology;
    const startRelay = async () => {
      const process = net.spawnDeno(relay, new URL("./support/relay_main.ts", import.meta.url), [
        "0.0.0.0",
        "4433",
        relayId.certPath,
        relayId.keyPath,
        org.caPath,
      ]);
      const ready = await process.nextLine();
      assert.equal(ready, "READY 4433");
      return process;
    };
    let relayProcess = await startRelay();
    const relayPort = 4433;
    const restartRelay = async (downMs: number) => {
      await relayProcess.stop();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      relayProcess = await startRelay();
    };
    const echo = net.spawnDeno(
      connectorHost,
      new URL("./support/udp_echo_main.ts", import.meta.url),
      ["serve", "7007"],
    );
    assert.equal(await echo.nextLine(), "READY");
    const web = net.spawn(connectorHost, [
      "python3",
      "-u",
      "-m",
      "http.server",
      "--bind",
      "127.0.0.1",
      "--directory",
      webRoot,
      "8080",
    ]);
    assert.match(await web.nextLine(), /Serving HTTP/);
    // Reads each connection to EOF, then answers with the sha256 of what it read.
    const digest = net.spawn(connectorHost, ["python3", "-u", "-c", HALF_CLOSE_SERVER]);
    assert.equal(await digest.nextLine(), "READY");
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
        "--forward",
        "127.0.0.1:8080",
        "--forward",
        "127.0.0.1:9090",
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
    await body({
      topology,
      org,
      relayPort,
      connector,
      agent,
      connectorLine,
      agentLine,
      restartRelay,
    });
  } finally {
    await topology.net.destroy();
    await org.cleanup();
    await Deno.remove(webRoot, { recursive: true });
  }
}

Deno.test("relay mode through two NATs: QAD, ping and UDP through the tunnel; SIGTERM removes the agent's TUN", async () => {
  await withTunnel(async ({ topology, connectorLine, agentLine, agent: agentProcess }) => {
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

    // SIGTERM: the agent exits 0 and its TUN device is gone.
    assert.equal((await net.exec(agent, ["ip", "link", "show", "ztna0"])).code, 0);
    assert.equal((await agentProcess.stop()).code, 0);
    const link = await net.exec(agent, ["ip", "link", "show", "ztna0"]);
    assert.notEqual(link.code, 0, "ztna0 still exists after the agent stopped");
    assert.match(link.stderr, /does not exist/);
  });
});

/** Sends `payload` by UDP from `host` to the service and returns the echo's text (python3 client). */
async function udpRoundTrip(
  net: NatTopology["net"],
  host: NatTopology["agent"],
  payload: string,
): Promise<string> {
  const script = "import socket,sys\n" +
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2)\n" +
    `s.sendto(sys.argv[1].encode(),('${SERVICE_IP}',7007))\n` +
    "print(s.recvfrom(2048)[0].decode())";
  const result = await net.exec(host, ["python3", "-c", script, payload]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim();
}

Deno.test("the relay cannot read session traffic: a marker never crosses its interface in clear", async () => {
  await withTunnel(async ({ topology }) => {
    const { net, relay, connector, agent } = topology;
    const marker = `ZTNA-MARKER-${crypto.randomUUID()}`;
    const dir = await Deno.makeTempDir({ prefix: "ztna-capture-" });
    try {
      // Everything the relay receives and forwards crosses its one interface.
      const relayCapture = net.spawn(relay, [
        "tcpdump",
        "-Z",
        "root",
        "-i",
        "v-internet",
        "-U",
        "--immediate-mode",
        "-s",
        "0",
        "-w",
        `${dir}/relay.pcap`,
        "udp",
      ]);
      // Positive control: the connector's loopback, where the plain datagram reaches the target.
      const targetCapture = net.spawn(connector, [
        "tcpdump",
        "-Z",
        "root",
        "-i",
        "lo",
        "-U",
        "--immediate-mode",
        "-s",
        "0",
        "-w",
        `${dir}/target.pcap`,
        "udp port 7007 or tcp port 8080",
      ]);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      for (let i = 0; i < 3; i++) await udpRoundTrip(net, agent, `${marker}-${i}`);
      // And over TCP: the marker is in the HTTP request line (a 404, but it crosses the tunnel).
      const tcp = await net.exec(agent, [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `http://${SERVICE_IP}:8080/${marker}-tcp`,
      ]);
      assert.equal(tcp.stdout, "404", tcp.stderr);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await relayCapture.stop();
      await targetCapture.stop();
      const relayBytes = await Deno.readFile(`${dir}/relay.pcap`);
      const targetBytes = await Deno.readFile(`${dir}/target.pcap`);
      const contains = (haystack: Uint8Array, needle: string) =>
        new TextDecoder("latin1").decode(haystack).includes(needle);
      assert.ok(contains(targetBytes, `${marker}-0`), "control: the UDP marker reached the target");
      assert.ok(
        contains(targetBytes, `${marker}-tcp`),
        "control: the TCP marker reached the target",
      );
      assert.ok(relayBytes.length > 5_000, `the relay capture holds ${relayBytes.length} bytes`);
      assert.equal(contains(relayBytes, marker), false, "the marker crossed the relay in clear");
      assert.equal(contains(relayBytes, "ZTNA-MARKER"), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("refusals end the commands with exit 1 and a clear message", async () => {
  await withTunnel(async ({ topology, org, relayPort }) => {
    const { net, agent, connector, addresses } = topology;
    const run = async (
      host: typeof agent,
      args: string[],
      identity: { certPath: string; keyPath: string },
      ca = org.caPath,
    ) => {
      const result = await net.exec(
        host,
        denoCommand(MAIN, [
          ...args,
          "--relay",
          `${addresses.relay}:${relayPort}`,
          "--relay-name",
          RELAY_NAME,
          "--cert",
          identity.certPath,
          "--key",
          identity.keyPath,
          "--ca",
          ca,
        ]),
        { timeoutMs: 30_000 },
      );
      return { code: result.code, stderr: result.stderr };
    };
    const agentArgs = ["agent", "--tun", "ztna1", "--service", "db=100.80.0.11"];
    const unknown = await run(agent, agentArgs, await org.issue("bob", "agent"));
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no connector publishes db/);

    // A valid identity the connector's access list does not name: refused by the connector.
    const denied = await run(
      agent,
      ["agent", "--tun", "ztna1", "--service", `web=${SERVICE_IP}`],
      await org.issue("dave", "agent"),
    );
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /connector conn-1 refused this agent: not in the access list/);

    const expired = await run(
      agent,
      agentArgs,
      await org.issue("carol", "agent", [], new Date(Date.now() - 3_600_000)),
    );
    assert.equal(expired.code, 1);
    assert.match(expired.stderr, /TLS alert \d+ \(certificate expired\)|TLS alert/);

    const other = await makeTestOrg("stranger");
    try {
      const strangerId = await other.issue("mallory", "agent");
      const wrongCa = await run(agent, agentArgs, strangerId, other.caPath);
      assert.equal(wrongCa.code, 1);
      assert.match(wrongCa.stderr, /TLS alert 48 \(unknown CA\)/);
    } finally {
      await other.cleanup();
    }

    const greedy = await run(
      connector,
      ["connector", "--service", "db", "--forward", "127.0.0.1:5432", "--allow", "*"],
      await org.issue("conn-2", "connector", ["web"]),
    );
    assert.equal(greedy.code, 1);
    assert.match(greedy.stderr, /conn-2 may not publish db/);
  });
});

Deno.test("TCP through the tunnel: an HTTP GET, a 50 MB transfer with equal sha256, 100 concurrent connections", async () => {
  await withTunnel(async ({ topology }) => {
    const { net, agent } = topology;
    const page = await net.exec(agent, [
      "curl",
      "-sS",
      "--max-time",
      "10",
      `http://${SERVICE_IP}:8080/`,
    ]);
    assert.equal(page.code, 0, page.stderr);
    assert.equal(page.stdout, PAGE);

    const big = await net.exec(
      agent,
      ["sh", "-c", `curl -sS --max-time 120 http://${SERVICE_IP}:8080/big.bin | sha256sum`],
      { timeoutMs: 150_000 },
    );
    assert.equal(big.code, 0, big.stderr);
    assert.equal(big.stdout.split(" ")[0], sha256(BIG));

    const concurrent = "import concurrent.futures,urllib.request\n" +
      "def get(i):\n" +
      `  return urllib.request.urlopen('http://${SERVICE_IP}:8080/', timeout=30).read()\n` +
      "with concurrent.futures.ThreadPoolExecutor(100) as pool:\n" +
      "  pages=list(pool.map(get, range(100)))\n" +
      "print(sum(1 for p in pages if b'hello through ztna' in p))";
    const many = await net.exec(agent, ["python3", "-c", concurrent], { timeoutMs: 60_000 });
    assert.equal(many.code, 0, many.stderr);
    assert.equal(many.stdout.trim(), "100");

    // Half-close: the client ends its direction and still reads the answer.
    const halfClose = "import socket\n" +
      `c=socket.create_connection(('${SERVICE_IP}',9090),timeout=30)\n` +
      "c.sendall(bytes(range(256))*4096);c.shutdown(socket.SHUT_WR)\n" +
      "r=b''\n" +
      "while True:\n" +
      "  d=c.recv(100)\n" +
      "  if not d: break\n" +
      "  r+=d\n" +
      "print(r.decode())";
    const answer = await net.exec(agent, ["python3", "-c", halfClose], { timeoutMs: 60_000 });
    assert.equal(answer.code, 0, answer.stderr);
    const sent = new Uint8Array(256 * 4096).map((_, i) => i % 256);
    assert.equal(answer.stdout.trim(), sha256(sent));
  });
});

Deno.test("a relay restart in the middle of a 50 MB TCP download: nodes reconnect, the download completes intact", async () => {
  await withTunnel(async ({ topology, restartRelay }) => {
    const { net, agent } = topology;
    // Throttled so the relay goes down mid-transfer (about 5 s at 10 MB/s).
    const download = net.exec(
      agent,
      [
        "sh",
        "-c",
        `curl -sS --limit-rate 10M --max-time 120 http://${SERVICE_IP}:8080/big.bin | sha256sum`,
      ],
      { timeoutMs: 150_000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await restartRelay(1_000);
    const result = await download;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.split(" ")[0], sha256(BIG));
  });
});
