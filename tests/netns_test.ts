/**
 * The namespace harness itself: the NAT topology really translates (the relay
 * sees each NAT's public address), private networks stay unreachable from the
 * public side, and `destroy()` leaves no namespace, link or process behind —
 * even with a process that ignores SIGTERM and an orphan the harness never
 * started directly.
 */
import assert from "node:assert/strict";
import { createNatTopology, type Topology } from "../lib/netns/mod.ts";

const UDP_SCRIPT = new URL("./support/udp_echo_main.ts", import.meta.url);

async function output(command: string[]): Promise<string> {
  const result = await new Deno.Command(command[0], { args: command.slice(1), stdout: "piped" })
    .output();
  return new TextDecoder().decode(result.stdout);
}

/** Link names in the root namespace and the namespaces of `net`, if any remain. */
async function leftovers(net: Topology): Promise<{ namespaces: string[]; rootLinks: string }> {
  const namespaces = (await output(["ip", "netns", "list"])).split("\n")
    .map((line) => line.split(" ")[0])
    .filter((name) => name.startsWith(`${net.id}-`));
  return { namespaces, rootLinks: await output(["ip", "-o", "link", "show"]) };
}

function linkNames(ipLinkOutput: string): string[] {
  return ipLinkOutput.split("\n").map((line) => /^\d+: ([^:@\s]+)/.exec(line)?.[1] ?? "")
    .filter((name) => name !== "").sort();
}

Deno.test("NAT topology: the relay sees each NAT's public address; private nets stay private", async () => {
  const rootLinksBefore = linkNames(await output(["ip", "-o", "link", "show"]));
  const topology = await createNatTopology("ztnat");
  const { net, relay, agent, connector, addresses } = topology;
  try {
    const echo = net.spawnDeno(relay, UDP_SCRIPT, ["serve", "7000"]);
    assert.equal(await echo.nextLine(), "READY");

    const fromAgent = await net.execDeno(agent, UDP_SCRIPT, ["ask", addresses.relay, "7000"]);
    assert.equal(fromAgent.code, 0, fromAgent.stderr);
    assert.match(fromAgent.stdout.trim(), new RegExp(`^${addresses.natAPublic}:\\d+$`));

    const fromConnector = await net.execDeno(connector, UDP_SCRIPT, [
      "ask",
      addresses.relay,
      "7000",
    ]);
    assert.equal(fromConnector.code, 0, fromConnector.stderr);
    assert.match(fromConnector.stdout.trim(), new RegExp(`^${addresses.natBPublic}:\\d+$`));

    // The public side has no route to either private network, and they cannot reach each other.
    const ping = ["ping", "-c", "1", "-W", "1"];
    assert.notEqual((await net.exec(relay, [...ping, addresses.agent])).code, 0);
    assert.notEqual((await net.exec(agent, [...ping, addresses.connector])).code, 0);
    assert.equal((await net.exec(agent, [...ping, addresses.natBPublic])).code, 0);
  } finally {
    await net.destroy();
  }
  await net.destroy(); // idempotent
  const after = await leftovers(net);
  assert.deepEqual(after.namespaces, []);
  assert.deepEqual(linkNames(after.rootLinks), rootLinksBefore);
});

Deno.test("destroy stops stubborn and orphaned processes, then removes links and namespaces", async () => {
  const { net, relay, agent } = await createNatTopology("ztdown");
  let pids: number[] = [];
  try {
    // Ignores SIGTERM: destroy must escalate to SIGKILL.
    const stubborn = net.spawn(relay, ["sh", "-c", "trap '' TERM; echo $$; exec sleep 60"]);
    // Leaves an orphan the harness never tracked; destroy finds it through `ip netns pids`.
    const orphan = await net.exec(agent, [
      "sh",
      "-c",
      "sleep 60 </dev/null >/dev/null 2>&1 & echo $!",
    ]);
    pids = [Number(await stubborn.nextLine()), Number(orphan.stdout.trim())];
    for (const pid of pids) assert.ok(pid > 0 && isAlive(pid), `pid ${pid} should be running`);
  } finally {
    const started = Date.now();
    await net.destroy();
    assert.ok(Date.now() - started < 10_000, "destroy should finish within its grace periods");
  }
  for (const pid of pids) assert.ok(!isAlive(pid), `pid ${pid} survived destroy`);
  assert.deepEqual((await leftovers(net)).namespaces, []);
  for (const host of net.hosts) {
    const result = await new Deno.Command("ip", {
      args: ["-n", host.netns, "link", "show"],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.notEqual(result.code, 0, `${host.netns} should be gone`);
  }
  await assert.rejects(() => net.addHost("late"), /is destroyed/);
});

/** Whether `pid` is a live process (a zombie awaiting its reaper counts as dead). */
function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
