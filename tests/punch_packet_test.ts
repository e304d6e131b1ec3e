/**
 * Punch packets, their replay window, candidates and in-session signals: pure
 * code, checked byte by byte and against forgeries, replays and stale packets.
 */
import assert from "node:assert/strict";
import {
  PUNCH_PACKET_BYTES,
  PUNCH_PING,
  PUNCH_PONG,
  PUNCH_TIME_WINDOW_MS,
  punchSessionId,
  PunchSigner,
  PunchVerifier,
} from "../lib/session/punch_packet.ts";
import { REPLAY_WINDOW, ReplayWindow } from "../lib/session/replay_window.ts";
import {
  acceptPeerCandidates,
  type Candidate,
  localCandidates,
  MAX_CANDIDATES,
} from "../lib/session/candidates.ts";
import { encodePunchKey, parseSignal } from "../lib/session/signals.ts";
import { ProtocolError } from "../lib/control/protocol_error.ts";

const SESSION = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);

/** A signer and the peer's verifier of it, created at time `t0`. */
function pair(t0 = 1_000) {
  const signer = new PunchSigner(SESSION, t0);
  const verifier = new PunchVerifier(SESSION, signer.key, signer.clock(t0 + 5), t0 + 5);
  return { signer, verifier };
}

Deno.test("a ping is 44 bytes with QUIC's fixed bit clear, and verifies once", () => {
  const { signer, verifier } = pair();
  const ping = signer.ping(3, 1_010);
  assert.equal(ping.length, PUNCH_PACKET_BYTES);
  assert.equal(ping[0], PUNCH_PING);
  assert.equal(ping[0] & 0x40, 0, "not a QUIC packet");
  assert.notEqual(ping[0], 0x00, "not STUN");
  assert.deepEqual(punchSessionId(ping), SESSION);
  const fields = verifier.verify(ping, 1_011);
  assert.equal(typeof fields, "object");
  assert.deepEqual(fields, {
    kind: "ping",
    session: SESSION,
    round: 3,
    counter: 0,
    timestamp: signer.clock(1_010),
    echoCounter: 0,
    echoTimestamp: 0,
  });
  assert.equal(verifier.verify(ping, 1_012), "replayed");
});

Deno.test("a pong has the ping's size and echoes its counter and timestamp: a round-trip time", () => {
  const a = pair(0), b = pair(0);
  // b's verifier knows a's key, and the reverse.
  const aVerifiesB = new PunchVerifier(SESSION, b.signer.key, b.signer.clock(0), 0);
  const bVerifiesA = new PunchVerifier(SESSION, a.signer.key, a.signer.clock(0), 0);
  const ping = a.signer.ping(1, 100);
  const received = bVerifiesA.verify(ping, 100.2);
  assert.ok(typeof received === "object");
  const pong = b.signer.pong(received, 100.3);
  assert.equal(pong.length, ping.length, "never answered with anything larger");
  assert.equal(pong[0], PUNCH_PONG);
  const back = aVerifiesB.verify(pong, 100.45);
  assert.ok(typeof back === "object");
  assert.equal(back.kind, "pong");
  assert.equal(back.echoCounter, received.counter);
  assert.equal(back.echoTimestamp, received.timestamp);
  assert.equal(a.signer.roundTripMs(back.echoTimestamp, 100.45), 0.45);
});

Deno.test("forged, foreign, truncated and stale punches are refused", () => {
  const { signer, verifier } = pair();
  const stranger = new PunchSigner(SESSION, 1_000);
  assert.equal(verifier.verify(stranger.ping(1, 1_010), 1_011), "bad-mac");
  for (let byte = 0; byte < PUNCH_PACKET_BYTES; byte++) {
    const flipped = signer.ping(1, 1_010);
    flipped[byte] ^= 0x01;
    const result = verifier.verify(flipped, 1_011);
    assert.ok(result === "bad-mac" || result === "malformed", `byte ${byte}: ${result}`);
  }
  const other = Uint8Array.from([8, 7, 6, 5, 4, 3, 2, 1]);
  assert.equal(verifier.verify(new PunchSigner(other, 0).ping(1, 0), 1_011), "malformed");
  assert.equal(verifier.verify(signer.ping(1, 1_010).subarray(0, 43), 1_011), "malformed");
  assert.equal(punchSessionId(new Uint8Array(44)), null);
  // Signed long ago or "in the future" by more than the window.
  const old = signer.ping(1, 1_020);
  assert.equal(verifier.verify(old, 1_020 + PUNCH_TIME_WINDOW_MS + 100), "stale");
  const early = new PunchSigner(SESSION, 1_000);
  const skewed = new PunchVerifier(SESSION, early.key, early.clock(1_000) + 20_000 * 100, 1_000);
  assert.equal(skewed.verify(early.ping(1, 1_100), 1_100), "stale");
});

Deno.test("the replay window takes each counter once and nothing too old", () => {
  const window = new ReplayWindow();
  assert.equal(window.accept(5), true);
  assert.equal(window.accept(5), false);
  assert.equal(window.accept(3), true, "late but within the window");
  assert.equal(window.accept(3), false);
  assert.equal(window.accept(5 + REPLAY_WINDOW), true);
  assert.equal(window.accept(5), false, "now more than the window behind");
  assert.equal(window.accept(6), true, "just inside the window");
  assert.equal(window.accept(2 ** 32), false);
  assert.equal(window.accept(-1), false);
  assert.equal(window.accept(0xffff_ffff), true);
});

Deno.test("local candidates: LAN addresses, the observed address, and a guess when the port changed", () => {
  const interfaces = [
    { name: "lo", family: "IPv4" as const, address: "127.0.0.1" },
    { name: "eth0", family: "IPv4" as const, address: "10.1.0.5" },
    { name: "eth0", family: "IPv6" as const, address: "fe80::1" },
    { name: "eth0", family: "IPv6" as const, address: "2001:db8::5" },
    { name: "ztna0", family: "IPv4" as const, address: "100.64.0.1" },
  ];
  const candidates = localCandidates({
    port: 40_000,
    family: 6,
    observed: "198.51.100.7:61000",
    interfaces,
    excludeInterfaces: ["ztna0"],
  });
  assert.deepEqual(candidates, [
    { address: "10.1.0.5:40000", kind: "lan" },
    { address: "[2001:db8::5]:40000", kind: "lan" },
    { address: "198.51.100.7:61000", kind: "public" },
    { address: "198.51.100.7:40000", kind: "guess" },
  ]);
  const ipv4Only = localCandidates({
    port: 40_000,
    family: 4,
    observed: "198.51.100.7:40000",
    interfaces,
  });
  assert.deepEqual(ipv4Only, [
    { address: "10.1.0.5:40000", kind: "lan" },
    { address: "100.64.0.1:40000", kind: "lan" },
    { address: "198.51.100.7:40000", kind: "public" },
  ]);
  // A NAT measured to map per destination: the guess even when the observed port matches; a
  // measured endpoint-independent one: no guess even when it does not.
  const facts = { port: 40_000, family: 4 as const, interfaces: [] };
  assert.deepEqual(
    localCandidates({ ...facts, observed: "198.51.100.7:40000", mappingVariesByDestination: true })
      .map((c) => c.kind),
    ["public"],
    "the guess equals the public candidate here, so it is not listed twice",
  );
  assert.deepEqual(
    localCandidates({
      ...facts,
      observed: "198.51.100.7:61000",
      mappingVariesByDestination: false,
    }),
    [{ address: "198.51.100.7:61000", kind: "public" }],
  );
  assert.deepEqual(
    localCandidates({ ...facts, observed: "198.51.100.7:61000", mappingVariesByDestination: true }),
    [
      { address: "198.51.100.7:61000", kind: "public" },
      { address: "198.51.100.7:40000", kind: "guess" },
    ],
  );
  // On one host (relay on loopback) the loopback address is the candidate.
  assert.deepEqual(
    localCandidates({ port: 5, family: 4, observed: "127.0.0.1:5", interfaces: [] }),
    [{ address: "127.0.0.1:5", kind: "public" }],
  );
});

Deno.test("peer candidates: only reachable unicast addresses, deduplicated and capped", () => {
  const offered: Candidate[] = [
    { address: "198.51.100.7:61000", kind: "public" },
    { address: "198.51.100.7:61000", kind: "guess" },
    { address: "0.0.0.3:1", kind: "public" },
    { address: "224.0.0.1:5000", kind: "lan" },
    { address: "255.255.255.255:5000", kind: "lan" },
    { address: "169.254.1.1:5000", kind: "lan" },
    { address: "10.0.0.1:0", kind: "lan" },
    { address: "127.0.0.1:5000", kind: "lan" },
    { address: "[2001:db8::1]:5000", kind: "lan" },
    { address: "not an address", kind: "lan" },
    { address: "198.18.10.2:7", kind: "public" },
  ];
  assert.deepEqual(acceptPeerCandidates(offered, { family: 4, observed: "192.0.2.1:9" }), [
    { address: "198.51.100.7:61000", kind: "public" },
    { address: "198.18.10.2:7", kind: "public" },
  ]);
  assert.deepEqual(
    acceptPeerCandidates(offered, { family: 6, observed: "127.0.0.1:9" }).map((c) => c.address),
    ["198.51.100.7:61000", "127.0.0.1:5000", "[2001:db8::1]:5000", "198.18.10.2:7"],
  );
  const many = Array.from({ length: 40 }, (_, i) => ({
    address: `192.0.2.${i + 1}:1000`,
    kind: "lan" as const,
  }));
  assert.equal(acceptPeerCandidates(many, { family: 4 }).length, MAX_CANDIDATES);
});

Deno.test("signals: valid ones parse, unknown types are skipped, malformed ones are protocol errors", () => {
  const key = encodePunchKey(new Uint8Array(32).fill(7));
  assert.deepEqual(parseSignal({ type: "admitted" }), { type: "admitted" });
  assert.deepEqual(parseSignal({ type: "punch", round: 3, extra: true }), {
    type: "punch",
    round: 3,
  });
  const candidates = [{ address: "198.51.100.7:61000", kind: "public" }];
  assert.deepEqual(parseSignal({ type: "candidates", key, clock: 12, candidates }), {
    type: "candidates",
    key,
    clock: 12,
    candidates,
  });
  assert.equal(parseSignal({ type: "from-the-future", x: 1 }), undefined);
  const bad: unknown[] = [
    null,
    [],
    { round: 1 },
    { type: "punch", round: 70_000 },
    { type: "punch", round: -1 },
    { type: "candidates", key: "AAAA", clock: 1, candidates },
    { type: "candidates", key: "not base64!", clock: 1, candidates },
    { type: "candidates", key, clock: -1, candidates },
    { type: "candidates", key, clock: 1, candidates: [{ address: "x", kind: "nearby" }] },
    { type: "candidates", key, clock: 1, candidates: Array(17).fill(candidates[0]) },
  ];
  for (const value of bad) {
    assert.throws(() => parseSignal(value), ProtocolError, JSON.stringify(value));
  }
});
