/**
 * Faults under a running transfer, with real `ztna` processes behind two
 * symmetric NATs (no direct path: every packet crosses the relay), a 30 MB
 * download and the fault 1.5 s in. Transfers that can survive complete with
 * the same sha256: 5 % random loss each way, a NAT rebinding (new public
 * address, conntrack flushed). Those that cannot fail fast: a connector
 * restart (graceful or a crash) resets the in-flight TCP connection, and new
 * connections work within 2 s of the connector being back. The relay restart
 * is in e2e_relay_test.ts. Needs root, iptables and conntrack.
 */
import assert from "node:assert/strict";
import { flushConntrack, readdress } from "../lib/netns/mod.ts";
import { pseudoRandomBytes, sha256 } from "./support/bytes.ts";
import { type LabSites, type P2pLab, SERVICE_IP, withP2pLab } from "./support/p2p_lab.ts";

const SITES: LabSites = { agent: { kind: "symmetric" }, connector: { kind: "symmetric" } };
const BIG = pseudoRandomBytes(30 * 1024 * 1024, 13);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A curl of big.bin through the tunnel at `rate`: its exit code, sha256 and when it ended. */
function download(
  lab: P2pLab,
  rate: string,
): Promise<{ code: number; sha256: string; endedAt: number; stderr: string }> {
  const done = lab.lab.net.exec(lab.agentHost, [
    "bash",
    "-c",
    // pipefail: the exit status is curl's when it fails.
    `set -o pipefail; curl -sS --limit-rate ${rate} --max-time 60 http://${SERVICE_IP}:8080/big.bin | sha256sum`,
  ], { timeoutMs: 90_000 }).then((result) => ({
    code: result.code,
    sha256: result.stdout.split(" ")[0],
    endedAt: Date.now(),
    stderr: result.stderr,
  }));
  done.catch(() => {});
  return done;
}

/** Fetches index.html with a 1 s timeout until it works; resolves with when it first did. */
async function firstSuccess(lab: P2pLab, deadlineMs: number): Promise<number> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const result = await lab.lab.net.exec(lab.agentHost, [
      ...["curl", "-sS", "--max-time", "1", `http://${SERVICE_IP}:8080/index.html`],
    ]);
    if (result.code === 0 && result.stdout === "hello through ztna\n") return Date.now();
    await sleep(100);
  }
  throw new Error(`no successful request within ${deadlineMs} ms`);
}

/** Drops `share` of the UDP packets between the agent's site and the relay, each way. */
async function addLoss(lab: P2pLab, share: number): Promise<void> {
  const { net, internet, relayAddress } = lab.lab;
  const agent = lab.agentSite.publicAddress;
  for (const [from, to] of [[agent, relayAddress], [relayAddress, agent]]) {
    const result = await net.exec(internet, [
      ...["iptables", "-I", "FORWARD", "-p", "udp", "-s", from, "-d", to],
      ...["-m", "statistic", "--mode", "random", "--probability", String(share), "-j", "DROP"],
    ]);
    assert.equal(result.code, 0, result.stderr);
  }
}

/** Packets the loss rules dropped. */
async function lossDropped(lab: P2pLab): Promise<number> {
  const result = await lab.lab.net.exec(lab.lab.internet, [
    ...["iptables", "-L", "FORWARD", "-v", "-x", "-n"],
  ]);
  return result.stdout.split("\n").filter((line) => line.includes("statistic"))
    .map((line) => Number(line.trim().split(/\s+/)[0])).reduce((a, b) => a + b, 0);
}

Deno.test("faults: 5 % loss each way from 1.5 s on: the 30 MB download completes intact", async () => {
  await withP2pLab("zfloss", SITES, async (lab) => {
    const transfer = download(lab, "6M");
    await sleep(1_500);
    await addLoss(lab, 0.05);
    const result = await transfer;
    assert.equal(result.code, 0, `curl: ${result.stderr}`);
    assert.equal(result.sha256, sha256(BIG));
    const dropped = await lossDropped(lab);
    assert.ok(dropped >= 500, `the loss rules dropped ${dropped} packets`);
  }, { bigFile: BIG });
});

Deno.test("faults: the agent's NAT rebinds mid-transfer (new address, conntrack flushed): the download completes intact", async () => {
  await withP2pLab("zfrebind", SITES, async (lab) => {
    const before = lab.agentSite.publicAddress;
    const transfer = download(lab, "6M");
    await sleep(1_500);
    const after = await readdress(lab.lab, lab.agentSite);
    await flushConntrack(lab.lab, lab.agentSite);
    assert.notEqual(after, before);
    const result = await transfer;
    assert.equal(result.code, 0, `curl: ${result.stderr}`);
    assert.equal(result.sha256, sha256(BIG));
    // The relay followed the agent to its new address (QAD), on the same relay connection.
    await lab.agent.stderr.waitFor(new RegExp(`the relay sees this agent at ${after}:`), 5_000);
  }, { bigFile: BIG });
});

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  const how = signal === "SIGTERM" ? "stops" : "crashes";
  Deno.test(`faults: the connector ${how} and comes back: the download fails fast, new connections work within 2 s`, async () => {
    await withP2pLab(`zf${signal === "SIGTERM" ? "stop" : "kill"}`, SITES, async (lab) => {
      const transfer = download(lab, "6M");
      await sleep(1_500);
      const back = await lab.restartConnector(signal, 2_000);
      const worked = await firstSuccess(lab, 10_000);
      const result = await transfer;
      assert.notEqual(result.code, 0, "the in-flight download cannot survive its connector");
      assert.match(result.stderr, /reset|refused|Recv failure/i);
      // A graceful stop ends the session at once; a crash, once the new connector replaces
      // the old one at the relay.
      const failedAfterBack = result.endedAt - back;
      if (signal === "SIGTERM") {
        assert.ok(failedAfterBack < 0, `the download failed ${failedAfterBack} ms after`);
      } else {
        assert.ok(failedAfterBack < 2_000, `the download failed ${failedAfterBack} ms after`);
      }
      assert.ok(worked - back < 2_000, `a new request worked ${worked - back} ms after`);
    }, { bigFile: BIG });
  });
}
