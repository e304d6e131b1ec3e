/**
 * `ztna demo` as an operator runs it: a real process that builds namespaces,
 * starts the relay, a web server, the connector and the agent, fetches a page
 * through the tunnel and leaves nothing behind; and the refusal without root.
 * Needs root.
 */
import assert from "node:assert/strict";
import { demoPage } from "../lib/demo/page.ts";
import type { DemoReport } from "../lib/demo/report.ts";
import { NEEDS_ROOT } from "../lib/demo/preflight.ts";
import { DEMO } from "../lib/demo/settings.ts";
import { NAT_ADDRESSES } from "../lib/netns/mod.ts";
import { assertExit, type ExecResult, REPO, ztna } from "./support/cli.ts";

/** Runs `[prefix...] deno run main.ts args` in the repository to completion (killed after 120 s). */
function demo(
  args: string[],
  prefix: string[] = [],
  env: Record<string, string> = {},
): Promise<ExecResult> {
  return ztna(args, {
    cwd: REPO,
    env,
    prefix,
    denoFlags: ["-A", "--unstable-net"],
    timeoutMs: 120_000,
  });
}

async function namespaces(): Promise<string[]> {
  const output = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" })
    .output();
  return new TextDecoder().decode(output.stdout).split("\n").map((line) => line.split(" ")[0]);
}

Deno.test("ztna demo --json: a page through the tunnel, direct between both NATs, then nothing left", async () => {
  const run = await demo(["demo", "--json"]);
  assertExit(run, 0);
  const report = JSON.parse(run.stdout) as DemoReport & { pathText: string };

  assert.equal(report.http.status, 200);
  assert.equal(report.http.url, `http://${DEMO.serviceIp}:${DEMO.web.port}/`);
  const pageBytes = new TextEncoder().encode(demoPage("0".repeat(16))).length;
  assert.equal(report.http.bytes, pageBytes);

  assert.equal(report.ping.received, report.ping.sent);
  assert.ok(report.ping.avgMs !== null && report.ping.avgMs < 100, `RTT ${report.ping.avgMs} ms`);

  // The session went direct: the relay is on its first path only.
  assert.ok(report.direct, "the session went direct");
  assert.match(report.direct.address, new RegExp(`^${NAT_ADDRESSES.natBPublic}:\\d+$`));
  assert.ok(report.direct.afterMs >= report.relayAfterMs && report.direct.afterMs < 10_000);
  assert.deepEqual(report.path.map((hop) => hop.hop), [
    "agent",
    "agent-nat",
    "connector-nat",
    "connector",
    "web",
  ]);
  const hops = Object.fromEntries(report.relayPath.map((hop) => [hop.hop, hop.address]));
  assert.deepEqual(Object.keys(hops), [
    "agent",
    "agent-nat",
    "relay",
    "connector-nat",
    "connector",
    "web",
  ]);
  assert.equal(hops.agent, NAT_ADDRESSES.agent);
  // The NATs as the relay observed them: each NAT's public address, some port.
  assert.match(hops["agent-nat"], new RegExp(`^${NAT_ADDRESSES.natAPublic}:\\d+$`));
  assert.equal(hops.relay, `${NAT_ADDRESSES.relay}:${DEMO.relayPort}`);
  assert.match(hops["connector-nat"], new RegExp(`^${NAT_ADDRESSES.natBPublic}:\\d+$`));
  assert.equal(hops.connector, NAT_ADDRESSES.connector);
  assert.equal(hops.web, "127.0.0.1:8080");
  assert.match(
    report.pathText,
    /^agent 10\.200\.1\.2 → NAT 198\.18\.2\.2:\d+ → NAT 198\.18\.3\.2:/,
  );
  assert.ok(report.setupMs > 0 && report.setupMs < 60_000, `setup ${report.setupMs} ms`);

  assert.match(report.topology, /^ztnademo-[0-9a-f]{4}$/);
  const left = (await namespaces()).filter((name) => name.startsWith(`${report.topology}-`));
  assert.deepEqual(left, []);
});

Deno.test("ztna demo without root: exit 1 and says why, creating nothing", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "ztna-nobody-" });
  try {
    await Deno.chown(denoDir, 65534, 65534);
    const before = await namespaces();
    const run = await demo(
      ["demo"],
      ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"],
      { DENO_DIR: denoDir, HOME: denoDir },
    );
    assertExit(run, 1);
    assert.equal(run.stderr.trim(), NEEDS_ROOT);
    assert.equal(run.stdout, "");
    assert.deepEqual(await namespaces(), before);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("ztna demo with a bad option value: usage error, exit 2", async () => {
  const run = await demo(["demo", "--keep-going-ms", "soon"]);
  assertExit(run, 2);
  assert.match(run.stderr, /invalid --keep-going-ms 'soon': expected an integer >= 0/);
});
