/**
 * The direct-path policy under fake time: no sockets, no timers; each test
 * feeds events at chosen instants and checks the actions, exactly.
 */
import assert from "node:assert/strict";
import {
  PATH_POLICY_DEFAULTS,
  type PathAction,
  PathPolicy,
  type PathPolicyOptions,
} from "../lib/session/path_policy.ts";

const A = "198.51.100.7:40000";
const B = "10.0.0.7:40000";
const R = "198.51.100.7:51515";

/** Runs `tick` at every wake-up until `until`, collecting what it does, with the times. */
function runUntil(policy: PathPolicy, until: number): { at: number; action: PathAction }[] {
  const out: { at: number; action: PathAction }[] = [];
  for (let wake = policy.nextWakeup(); wake <= until; wake = policy.nextWakeup()) {
    for (const action of policy.tick(wake)) out.push({ at: wake, action });
  }
  return out;
}

function agent(options: Partial<PathPolicyOptions> = {}): PathPolicy {
  return new PathPolicy({ role: "agent", ...options });
}

Deno.test("agent: candidates start a round: signal, then punches and probes on the schedule", () => {
  const policy = agent();
  const first = policy.setRemoteCandidates([A, B], 1_000);
  assert.deepEqual(first, [
    { type: "signal-round", round: 1 },
    { type: "punch", round: 1, targets: [A, B] },
    { type: "probe", target: A },
    { type: "probe", target: B },
  ]);
  const later = runUntil(policy, 1_000 + PATH_POLICY_DEFAULTS.roundMs - 1);
  const punchTimes = later.filter((e) => e.action.type === "punch").map((e) => e.at - 1_000);
  assert.deepEqual(punchTimes, PATH_POLICY_DEFAULTS.schedule.slice(1));
  assert.equal(later.filter((e) => e.action.type === "probe").length, 2 * punchTimes.length);
  assert.equal(policy.state().roundActive, true);
});

Deno.test("agent: a round without a path ends and retries after 5, 15, 30 then every 60 s", () => {
  const policy = agent();
  policy.setRemoteCandidates([A], 0);
  const signals: number[] = [];
  for (const { at, action } of runUntil(policy, 400_000)) {
    if (action.type === "signal-round") signals.push(at);
  }
  // Each round lasts 5 s; the waits after it grow, then stay at a minute.
  assert.deepEqual(signals.slice(0, 6), [10_000, 30_000, 65_000, 130_000, 195_000, 260_000]);
});

Deno.test("agent: the first validated path is taken at once; the connector is never told to migrate", () => {
  const policy = agent();
  policy.setRemoteCandidates([A, B], 0);
  assert.deepEqual(policy.pathValidated(A, 40), [
    { type: "migrate", to: A, reason: "validated" },
  ]);
  assert.equal(policy.current, A);
  // Another direct path with no measured round trip does not displace it.
  assert.deepEqual(policy.pathValidated(B, 60), []);
  const connector = new PathPolicy({ role: "connector" });
  assert.deepEqual(connector.pathValidated(A, 40), []);
  assert.equal(connector.current, "relay");
});

Deno.test("agent: a faster direct path replaces the current one only past the margin", () => {
  const policy = agent();
  policy.setRemoteCandidates([A, B], 0);
  policy.punchHeard(A, "pong", 1.0, 10);
  policy.pathValidated(A, 20);
  policy.pathValidated(B, 25);
  // 0.95 ms is within 10 % of 1 ms: no switch, no flapping on noise.
  assert.deepEqual(policy.punchHeard(B, "pong", 0.95, 30), []);
  assert.equal(policy.current, A);
  // 0.5 ms is clearly better.
  assert.deepEqual(policy.punchHeard(B, "pong", 0.5, 40), [
    { type: "migrate", to: B, reason: "pong from a validated path" },
  ]);
  assert.equal(policy.current, B);
});

Deno.test("agent: a verified punch from an unknown source becomes a target and is probed at once", () => {
  const policy = agent();
  policy.setRemoteCandidates([A], 0);
  assert.deepEqual(policy.punchHeard(R, "ping", undefined, 50), [{ type: "probe", target: R }]);
  assert.deepEqual(policy.targets, [A, R]);
  // Heard again in the same round: no extra probe (the schedule keeps probing it).
  assert.deepEqual(policy.punchHeard(R, "ping", undefined, 60), []);
  const next = policy.tick(66);
  assert.deepEqual(
    next.filter((a) => a.type === "probe").map((a) => a.type === "probe" && a.target),
    [
      A,
      R,
    ],
  );
  // At most four peer-reflexive targets.
  for (let i = 0; i < 10; i++) policy.punchHeard(`192.0.2.${i}:1000`, "ping", undefined, 70);
  assert.equal(policy.targets.length, 1 + 4);
});

Deno.test("agent: a silent direct path falls back to the relay within 2 s, keep-alives first", () => {
  const policy = agent();
  policy.setRemoteCandidates([A], 0);
  policy.pathValidated(A, 100);
  // Busy path: packets arrive every 100 ms until 1 s, then nothing.
  const actions: { at: number; action: PathAction }[] = [];
  let received = 0;
  for (let t = 200; t <= 4_000; t += 100) {
    if (t <= 1_000) received += 10;
    for (const action of policy.traffic({ packetsReceived: received, datagrams: received }, t)) {
      actions.push({ at: t, action });
    }
    if (policy.current === "relay") break;
  }
  const keepalives = actions.filter((a) => a.action.type === "keepalive").map((a) => a.at);
  assert.deepEqual(keepalives, [1_500, 2_000]);
  const fallback = actions.find((a) => a.action.type === "migrate")!;
  assert.deepEqual(fallback, {
    at: 2_500,
    action: { type: "migrate", to: "relay", reason: "direct silent 1.5 s" },
  });
  assert.ok(fallback.at - 1_000 <= 2_000, "back on the relay within 2 s of the last packet");
});

Deno.test("agent: an idle direct path is kept alive every 15 s and declared dead 1 s after an unanswered one", () => {
  const policy = agent();
  policy.setRemoteCandidates([A], 0);
  policy.pathValidated(A, 0);
  const keepalives: number[] = [];
  let fellBackAt = -1;
  let received = 0;
  for (let t = 100; t <= 200_000 && fellBackAt < 0; t += 100) {
    for (const action of policy.traffic({ packetsReceived: received, datagrams: 0 }, t)) {
      if (action.type === "keepalive") {
        keepalives.push(t);
        // The peer answers every keep-alive until 100 s.
        if (t < 100_000) received++;
      }
      if (action.type === "migrate") fellBackAt = t;
    }
  }
  // Active for 45 s after the start (a keep-alive after 0.5 s of quiet), then idle (15 s).
  assert.ok(keepalives.filter((t) => t < 45_000).length >= 70);
  const idle = keepalives.filter((t) => t > 50_000);
  // 15 s after the answer, which the 100 ms sampling sees one sample after the keep-alive.
  assert.deepEqual(idle.slice(0, 4).map((t, i, all) => i === 0 ? 0 : t - all[i - 1]), [
    0,
    15_100,
    15_100,
    15_100,
  ]);
  const lastAnswered = Math.max(...keepalives.filter((t) => t < 100_000));
  const unanswered = keepalives.find((t) => t > 100_000)!;
  assert.equal(unanswered - lastAnswered, 15_100);
  assert.equal(fellBackAt, unanswered + 1_000);
});

Deno.test("agent: after a fallback the silent path needs a fresh pong before it is used again", () => {
  const policy = agent();
  policy.setRemoteCandidates([A], 0);
  policy.pathValidated(A, 0);
  for (let t = 100; policy.current !== "relay"; t += 100) {
    policy.traffic({ packetsReceived: 1, datagrams: 1 }, t);
  }
  assert.equal(policy.state().current, "relay");
  // The round still runs; 5 s after it ends, the next one starts.
  const events = runUntil(policy, 10_000);
  const next = events.find((e) => e.action.type === "signal-round")!;
  assert.deepEqual(next, { at: 10_000, action: { type: "signal-round", round: 2 } });
  const wake = next.at;
  // A ping from the old path is not enough (one way); a pong is.
  assert.deepEqual(policy.punchHeard(A, "ping", undefined, wake + 10), []);
  assert.deepEqual(policy.punchHeard(A, "pong", 0.4, wake + 20), [
    { type: "migrate", to: A, reason: "pong from a validated path" },
  ]);
});

Deno.test("agent: a failed validation retires the path's ID; on the active path it also falls back", () => {
  const policy = agent();
  policy.setRemoteCandidates([A, B], 0);
  assert.deepEqual(policy.pathFailed(B, 3_000), [{ type: "retire", target: B }]);
  policy.pathValidated(A, 3_100);
  assert.deepEqual(policy.pathFailed(A, 9_000), [
    { type: "retire", target: A },
    { type: "migrate", to: "relay", reason: "direct path failed validation" },
  ]);
  assert.equal(policy.current, "relay");
});

Deno.test("agent: network or peer changes start a new round at once, but not twice within a second", () => {
  const policy = agent();
  policy.setRemoteCandidates([A], 0);
  runUntil(policy, 20_000);
  assert.equal(policy.state().round, 2, "one retry round by 20 s");
  const changed = policy.localChanged(21_000);
  assert.deepEqual(changed[0], { type: "signal-round", round: 3 });
  assert.deepEqual(policy.peerMoved(21_500), [], "within a second of the last round start");
  assert.equal(policy.peerMoved(22_100)[0]?.type, "signal-round");
  assert.equal(policy.state().round, 4);
  // Unchanged candidates do not start a round.
  assert.deepEqual(policy.setRemoteCandidates([A], 30_000), []);
});

Deno.test("hopeless NATs: no rounds, a running one stops; clearing the reason starts one", () => {
  const running = agent();
  running.setRemoteCandidates([A], 0);
  assert.equal(running.state().roundActive, true);
  assert.deepEqual(running.setHopeless("learned late", 50), []);
  assert.equal(running.state().roundActive, false);
  assert.equal(running.nextWakeup(), Infinity);
  assert.deepEqual(running.tick(5_000), []);
  const policy = agent();
  policy.setHopeless("both NATs map per destination", 0);
  assert.deepEqual(policy.setRemoteCandidates([A], 0), []);
  assert.equal(policy.nextWakeup(), Infinity);
  assert.equal(policy.state().hopeless, "both NATs map per destination");
  assert.equal(policy.setHopeless(null, 10)[0]?.type, "signal-round");
});

Deno.test("connector: punches only when the agent signals a round, on the same schedule, never probes", () => {
  const policy = new PathPolicy({ role: "connector" });
  assert.deepEqual(policy.setRemoteCandidates([A], 0), []);
  assert.equal(policy.nextWakeup(), Infinity);
  const first = policy.roundSignalled(7, 500);
  assert.deepEqual(first, [{ type: "punch", round: 7, targets: [A] }]);
  // The agent's source, learned from its punch, is punched too (its NAT may be symmetric).
  assert.deepEqual(policy.punchHeard(R, "ping", undefined, 510), []);
  const rest = runUntil(policy, 500 + PATH_POLICY_DEFAULTS.roundMs);
  assert.ok(rest.every((e) => e.action.type === "punch"));
  assert.deepEqual(rest.at(-1)!.action, { type: "punch", round: 7, targets: [A, R] });
  assert.equal(rest.length, PATH_POLICY_DEFAULTS.schedule.length - 1);
  assert.equal(policy.state().roundActive, false);
  assert.equal(policy.nextWakeup(), Infinity);
});

Deno.test("connector: a busy direct path that goes quiet nudges the relay once per quiet spell", () => {
  const policy = new PathPolicy({ role: "connector" });
  policy.activePathIs(A, 0);
  let received = 0, datagrams = 0;
  const nudges: number[] = [];
  for (let t = 250; t <= 12_000; t += 250) {
    // Busy until 2 s; quiet until 6 s; busy again until 8 s; then quiet and idle.
    if (t <= 2_000 || (t > 6_000 && t <= 8_000)) {
      received += 5;
      datagrams += 5;
    }
    for (const action of policy.traffic({ packetsReceived: received, datagrams }, t)) {
      assert.deepEqual(action, { type: "nudge-relay" });
      nudges.push(t);
    }
  }
  assert.deepEqual(nudges, [3_500, 9_500]);
  // An idle session (the agent's keep-alives only: every 0.5 s for 45 s after it moved, then
  // every 15 s; no DATAGRAMs) is quiet by nature: no nudge.
  const idle = new PathPolicy({ role: "connector" });
  idle.activePathIs(A, 0);
  const actions = [];
  for (let t = 250; t <= 120_000; t += 250) {
    const keepalives = t <= 45_000 ? Math.floor(t / 500) : 90 + Math.floor((t - 45_000) / 15_000);
    actions.push(...idle.traffic({ packetsReceived: keepalives, datagrams: 0 }, t));
  }
  assert.deepEqual(actions, []);
});
