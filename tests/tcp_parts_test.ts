/**
 * lib/tcp's building blocks on their own: the RFC 6298 estimator, the out-of-order buffer
 * and SACK blocks, the sender's SACK scoreboard, the send ring, NewReno, and option checks.
 */
import assert from "node:assert/strict";
import { ByteRing } from "../lib/tcp/byte_ring.ts";
import { resolveTcpConfig, windowScaleFor } from "../lib/tcp/config.ts";
import { NewReno } from "../lib/tcp/congestion.ts";
import { Reassembly } from "../lib/tcp/reassembly.ts";
import { RttEstimator } from "../lib/tcp/rtt.ts";
import { SackScoreboard } from "../lib/tcp/scoreboard.ts";

Deno.test("RTT estimator: RFC 6298 smoothing, bounds, backoff", () => {
  const rtt = new RttEstimator(1000, 200, 60_000);
  assert.equal(rtt.rto, 1000);
  rtt.sample(100);
  assert.equal(rtt.rto, 300, "SRTT + 4 RTTVAR = 100 + 4 × 50");
  rtt.sample(200);
  assert.equal(rtt.srtt, 112.5);
  assert.equal(rtt.rto, 362.5, "RTTVAR 62.5");
  rtt.backoff();
  assert.equal(rtt.rto, 725);
  for (let i = 0; i < 10; i++) rtt.backoff();
  assert.equal(rtt.rto, 60_000, "capped");
  rtt.sample(1);
  assert.ok(rtt.rto >= 200, "a fresh sample clears the backoff, within the bounds");
  const fast = new RttEstimator(1000, 200, 60_000);
  fast.sample(0);
  assert.equal(fast.rto, 200, "never below the minimum");
});

Deno.test("reassembly: overlaps trimmed, pieces bounded, in-order hand-back, SACK order", () => {
  const base = 0xfffffff0; // wraps at 2^32
  const at = (n: number) => (base + n) >>> 0;
  const bytes = (from: number, to: number) =>
    Uint8Array.from({ length: to - from }, (_, i) => (from + i) & 0xff);
  const r = new Reassembly(3);
  assert.equal(r.insert(at(20), bytes(20, 30), base), "stored");
  assert.equal(r.insert(at(10), bytes(10, 15), base), "stored");
  assert.deepEqual(r.sackBlocks(4), [[at(10), at(15)], [at(20), at(30)]]);
  assert.equal(r.insert(at(22), bytes(22, 28), base), "duplicate");
  assert.equal(r.insert(at(12), bytes(12, 25), base), "stored", "the gap 15-20 is new");
  assert.deepEqual(r.sackBlocks(4), [[at(10), at(30)]], "adjacent pieces merge in SACK");
  assert.equal(r.insert(at(40), bytes(40, 41), base), "full", "three pieces already");
  assert.equal(r.next(base), undefined, "a gap before 10");
  const joined = [r.next(at(10)), r.next(at(15)), r.next(at(20))];
  assert.deepEqual(joined.map((p) => p && Array.from(p)), [
    Array.from(bytes(10, 15)),
    Array.from(bytes(15, 20)),
    Array.from(bytes(20, 30)),
  ]);
  assert.ok(r.empty);
  r.insert(at(5), bytes(5, 9), base);
  assert.deepEqual(Array.from(r.next(at(7))!), [7, 8], "trimmed to rcvNxt");
});

Deno.test("SACK scoreboard: merges, ignores bogus blocks, finds lost holes", () => {
  const una = 0xffffff00;
  const at = (n: number) => (una + n) >>> 0;
  const board = new SackScoreboard();
  assert.equal(board.update([[at(1000), at(2000)]], una, at(5000)), true);
  assert.equal(board.update([[at(1500), at(2000)]], una, at(5000)), false, "nothing new");
  assert.equal(board.update([[at(0), at(100)], [at(4000), at(6000)]], una, at(5000)), false);
  assert.equal(board.update([[at(3000), at(4000)], [at(2000), at(2500)]], una, at(5000)), true);
  assert.equal(board.lostHole(una, 2500), undefined, "2500 bytes above, threshold 2500");
  assert.deepEqual(board.lostHole(una, 2000), [una, at(1000)]);
  assert.deepEqual(board.lostHole(at(1000), 500), [at(2500), at(3000)]);
  assert.equal(board.lostHole(at(2500), 1000), undefined);
  board.acknowledge(at(2600));
  assert.deepEqual(board.lostHole(at(2600), 100), [at(2600), at(3000)]);
  board.acknowledge(at(4000));
  assert.ok(board.empty);
});

Deno.test("send ring: grows to its limit, wraps, reads at offsets", () => {
  const ring = new ByteRing(40_000);
  const data = Uint8Array.from({ length: 30_000 }, (_, i) => i & 0xff);
  assert.equal(ring.push(data), 30_000);
  ring.discard(25_000);
  assert.equal(ring.push(data), 30_000, "wraps around");
  assert.equal(ring.push(data), 5000, "only what fits");
  assert.equal(ring.free, 0);
  const out = new Uint8Array(10);
  ring.copyTo(4995, 10, out, 0);
  assert.deepEqual(Array.from(out), [...data.subarray(29_995), ...data.subarray(0, 5)]);
  assert.throws(() => ring.copyTo(39_995, 10, out, 0), /reading bytes 39995-40005/);
});

Deno.test("NewReno: slow start, avoidance, fast recovery with partial ACKs, timeout", () => {
  const cc = new NewReno(1000, 0);
  assert.equal(cc.cwnd, 10_000, "RFC 6928 initial window");
  cc.onNewAck(2000, 2000, 10_000);
  assert.equal(cc.cwnd, 12_000, "slow start, at most 2 MSS per ACK");
  cc.onNewAck(3000, 1000, 2000);
  assert.equal(cc.cwnd, 12_000, "no growth while the window is mostly unused");
  assert.equal(cc.enterRecovery(3000, 12_000, 15_000), true);
  assert.deepEqual([cc.ssthresh, cc.cwnd], [6000, 9000]);
  assert.equal(cc.enterRecovery(3000, 12_000, 15_000), false, "already recovering");
  assert.equal(cc.onNewAck(5000, 2000, 12_000), "partial");
  assert.equal(cc.cwnd, 8000, "deflated by 2000, one MSS added back");
  assert.equal(cc.onNewAck(15_000, 10_000, 10_000), "full");
  assert.equal(cc.cwnd, 1000 + 1000, "min(ssthresh, flight + MSS) with nothing left in flight");
  cc.cwnd = 6000;
  cc.onNewAck(21_000, 6000, 6000);
  assert.equal(cc.cwnd, 7000, "avoidance: one MSS per window");
  cc.onTimeout(7000, 30_000);
  assert.deepEqual([cc.cwnd, cc.ssthresh, cc.recover], [1000, 3500, 30_000]);
  assert.equal(cc.enterRecovery(29_000, 1000, 30_000), false, "below recover (RFC 6582)");
});

Deno.test("options: defaults, ranges and window-scale shifts", () => {
  const config = resolveTcpConfig({});
  assert.deepEqual([config.mtu, config.receiveWindow, config.minRtoMs, config.maxRtoMs], [
    1280,
    256 * 1024,
    200,
    60_000,
  ]);
  assert.throws(
    () => resolveTcpConfig({ mtu: 100 }),
    /TCP option mtu must be .* 576-65535, got 100/,
  );
  assert.throws(() => resolveTcpConfig({ minRtoMs: 5000, maxRtoMs: 1000 }), /exceeds maxRtoMs/);
  assert.throws(() => resolveTcpConfig({ receiveWindow: 1.5 }), /receiveWindow/);
  assert.deepEqual([65535, 65536, 256 * 1024, 0xffff << 14].map(windowScaleFor), [0, 1, 3, 14]);
});
