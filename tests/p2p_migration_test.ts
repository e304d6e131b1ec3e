/**
 * The live session across path switches, with real `ztna` processes behind
 * two port-restricted-cone NATs (a direct path exists): a ping and a TCP
 * download running while the session migrates from the relay to the direct
 * path; a download across a blackholed direct path (fallback to the relay
 * within 2 s); a connector whose public address changes gets back to direct;
 * and the direct path's round-trip time against the raw path's.
 */
import assert from "node:assert/strict";
import { blackhole, readdress, unblackhole } from "../lib/netns/mod.ts";
import { pseudoRandomBytes, sha256 } from "./support/bytes.ts";
import {
  type LabSites,
  lastLogLines,
  type P2pLab,
  relayedBetween,
  SERVICE_IP,
  withP2pLab,
} from "./support/p2p_lab.ts";

const SITES: LabSites = {
  agent: { kind: "port-restricted-cone" },
  connector: { kind: "port-restricted-cone" },
};
const BIG = pseudoRandomBytes(24 * 1024 * 1024, 11);

/** Downloads big.bin through the tunnel at `rate` (curl's --limit-rate); resolves with its sha256. */
function download(lab: P2pLab, rate: string): Promise<string> {
  const done = lab.lab.net.exec(lab.agentHost, [
    "sh",
    "-c",
    `curl -sS --limit-rate ${rate} --max-time 90 http://${SERVICE_IP}:8080/big.bin | sha256sum`,
  ], { timeoutMs: 100_000 }).then((result) => {
    assert.equal(result.code, 0, `curl: exit ${result.code} ${result.stderr}`);
    return result.stdout.split(" ")[0];
  });
  // If the test fails first, teardown kills curl: that is not a second failure.
  done.catch(() => {});
  return done;
}

/** Milliseconds since the epoch of a LogTape text line. */
function logTime(line: string): number {
  return Date.parse(line.slice(0, 23).replace(" ", "T") + "Z");
}

/** Adds an address to the agent's LAN interface: a network change that starts a round at once. */
async function networkChange(lab: P2pLab, address: string): Promise<void> {
  const result = await lab.lab.net.exec(lab.agentHost, [
    ...["ip", "addr", "add", `${address}/24`, "dev", "eth0"],
  ]);
  assert.equal(result.code, 0, result.stderr);
}

Deno.test("relay → direct while a ping and a TCP download run: at most one reply lost, the download intact", async () => {
  await withP2pLab("p2pmig", SITES, async (lab) => {
    const ping = lab.lab.net.exec(lab.agentHost, [
      ...["ping", "-c", "300", "-i", "0.02", "-W", "1", SERVICE_IP],
    ], { timeoutMs: 30_000 });
    const transfer = download(lab, "4M");
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(await lab.direct(0), null, "still on the relay");
    await unblackhole(lab.lab, lab.agentSite, lab.connectorSite);
    await networkChange(lab, "10.10.0.99");
    const direct = await lab.direct(8_000);
    assert.equal(direct?.split(":")[0], lab.connectorSite.publicAddress);
    const pinged = await ping;
    const received = Number(/(\d+) received/.exec(pinged.stdout)?.[1]);
    const lines = lastLogLines(lab);
    assert.ok(
      received >= 299,
      `${300 - received} of 300 replies lost across the switch:\n${lines.join("\n")}`,
    );
    assert.equal(await transfer, sha256(BIG));
  }, {
    bigFile: BIG,
    // The session starts on the relay: the direct path is blocked until the switch.
    beforeAgent: (lab, agentSite, connectorSite) => blackhole(lab, agentSite, connectorSite),
  });
});

Deno.test("a blackholed direct path: back on the relay within 2 s, the download completes intact, then direct again", async () => {
  await withP2pLab("p2pfb", SITES, async (lab) => {
    const direct = await lab.direct(10_000);
    assert.ok(direct, "direct first");
    const transfer = download(lab, "4M");
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const blackholedAt = Date.now();
    await blackhole(lab.lab, lab.agentSite, lab.connectorSite);
    const back = await lab.agent.stderr.waitFor(/session web: back to the relay/, 5_000);
    // Our silence rule, or quiche failing the path's validation first, whichever is quicker.
    assert.match(back, /direct silent 1\.\d s|direct path failed validation/);
    const took = logTime(back) - blackholedAt;
    assert.ok(took <= 2_000, `back on the relay ${took} ms after the blackhole`);
    const counters = await lab.relayCounters();
    assert.equal(await transfer, sha256(BIG));
    const after = await lab.relayCounters();
    assert.ok(
      relayedBetween(counters, after, ["connectorToAgent"]) > 1_000,
      `the rest came through the relay: ${JSON.stringify(counters.sessions)} then ${
        JSON.stringify(after.sessions)
      }\n${lastLogLines(lab).join("\n")}`,
    );
    // The path comes back: punching resumes on the backoff and finds it.
    await unblackhole(lab.lab, lab.agentSite, lab.connectorSite);
    const lines = () => lab.agent.stderr.tail().filter((l) => /session web: direct /.test(l));
    const before = lines().length;
    const deadline = Date.now() + 25_000;
    while (lines().length === before && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.ok(lines().length > before, "direct again after the blackhole lifted");
  }, { bigFile: BIG });
});

Deno.test("the connector's NAT gets a new public address: the session falls back, then goes direct to the new one", async () => {
  await withP2pLab("p2padr", SITES, async (lab) => {
    const first = await lab.direct(10_000);
    assert.ok(first);
    // Keep traffic flowing so the change is noticed at once.
    const ping = lab.lab.net.exec(lab.agentHost, [
      ...["ping", "-c", "400", "-i", "0.05", "-W", "1", SERVICE_IP],
    ], { timeoutMs: 40_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const fresh = await readdress(lab.lab, lab.connectorSite);
    await lab.agent.stderr.waitFor(/session web: back to the relay/, 5_000);
    const again = await lab.agent.stderr.waitFor(
      new RegExp(`session web: direct ${fresh.replaceAll(".", "\\.")}:`),
      15_000,
    ).catch((error) => {
      throw new Error(`${error.message}:\n${lastLogLines(lab).join("\n")}`);
    });
    assert.ok(again);
    const pinged = await ping;
    const received = Number(/(\d+) received/.exec(pinged.stdout)?.[1]);
    // Lost: only while the old path was being declared silent.
    assert.ok(received >= 400 - 45, `${400 - received} of 400 replies lost`);
  });
});

Deno.test("round-trip times: the direct path beats the relay path, measured beside the raw path", async () => {
  // Routed hosts: the raw path is the very route the direct path's UDP takes.
  const sites: LabSites = { agent: { kind: "none" }, connector: { kind: "none" } };
  await withP2pLab("p2prtt", sites, async (lab) => {
    assert.ok(await lab.direct(10_000));
    const avg = async (target: string) => {
      const result = await lab.lab.net.exec(lab.agentHost, [
        ...["ping", "-c", "50", "-i", "0.02", "-q", target],
      ]);
      const value = Number(/= [\d.]+\/([\d.]+)\//.exec(result.stdout)?.[1]);
      assert.ok(Number.isFinite(value), `ping ${target}: ${result.stdout} ${result.stderr}`);
      return value;
    };
    await avg(SERVICE_IP);
    const raw = await avg(lab.connectorSite.hostAddresses[0]);
    const direct = await avg(SERVICE_IP);
    await blackhole(lab.lab, lab.agentSite, lab.connectorSite);
    await lab.agent.stderr.waitFor(/session web: back to the relay/, 5_000);
    await avg(SERVICE_IP);
    const relayed = await avg(SERVICE_IP);
    console.log(`RTT raw ${raw} ms, direct ${direct} ms, via the relay ${relayed} ms`);
    assert.ok(direct < relayed, `direct ${direct} ms is not faster than the relay's ${relayed} ms`);
  });
});
