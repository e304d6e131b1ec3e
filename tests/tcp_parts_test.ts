/**
 * lib/tcp's building blocks on their own: the RFC 6298 estimator, the out-of-order buffer
 * and SACK blocks, the sender's SACK scoreboard and record of segments in flight (pipe,
 * DupThresh and RACK loss marking), the send ring, congestion control, and option checks.
 */
import assert from "node:assert/strict";
import { ByteRing } from "../lib/tcp/byte_ring.ts";
import { resolveTcpConfig, windowScaleFor } from "../lib/tcp/config.ts";
import { CongestionControl } from "../lib/tcp/congestion.ts";
import { Reassembly } from "../lib/tcp/reassembly.ts";
import { RttEstimator } from "../lib/tcp/rtt.ts";
import { SackScoreboard } from "../lib/tcp/scoreboard.ts";
import { SentSegments } from "../lib/tcp/sent_segments.ts";

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

Deno.test("reassembly: a window of segments behind one gap is one range; gaps filled from either side merge", () => {
  const base = 0xfffff000; // wraps at 2^32 inside the window
  const at = (n: number) => (base + n) >>> 0;
  const MSS = 1200, SEGMENTS = 900;
  const payload = (n: number) => Uint8Array.from({ length: MSS }, (_, i) => (n * 7 + i) & 0xff);
  const r = new Reassembly(1024);
  for (let n = 1; n <= SEGMENTS; n++) {
    assert.equal(r.insert(at(n * MSS), payload(n), base), "stored");
  }
  assert.deepEqual(r.sackBlocks(4), [[at(MSS), at((SEGMENTS + 1) * MSS)]], "one block, not 900");
  // Another gap, then a segment that touches only the range after it, then the one between.
  assert.equal(r.insert(at((SEGMENTS + 3) * MSS), payload(SEGMENTS + 3), base), "stored");
  assert.equal(
    r.insert(at((SEGMENTS + 2) * MSS + 600), payload(0).subarray(0, 600), base),
    "stored",
  );
  assert.deepEqual(r.sackBlocks(4), [
    [at((SEGMENTS + 2) * MSS + 600), at((SEGMENTS + 4) * MSS)],
    [at(MSS), at((SEGMENTS + 1) * MSS)],
  ], "the latest block first");
  assert.equal(r.insert(at((SEGMENTS + 1) * MSS), new Uint8Array(1800), base), "stored");
  assert.deepEqual(r.sackBlocks(4), [[at(MSS), at((SEGMENTS + 4) * MSS)]], "merged into one");
  assert.equal(r.next(base), undefined, "the first segment is still missing");
  let rcvNxt = at(MSS), bytes = 0;
  for (let piece = r.next(rcvNxt); piece; piece = r.next(rcvNxt)) {
    if (bytes < SEGMENTS * MSS) assert.deepEqual(piece, payload(bytes / MSS + 1));
    bytes += piece.length;
    rcvNxt = (rcvNxt + piece.length) >>> 0;
  }
  assert.equal(bytes, (SEGMENTS + 3) * MSS);
  assert.ok(r.empty);
  const small = new Reassembly(2);
  assert.equal(small.insert(at(100), payload(1), base), "stored");
  assert.equal(small.insert(at(100 + MSS), payload(2), base), "stored");
  assert.equal(
    small.insert(at(100 + 2 * MSS), payload(3), base),
    "full",
    "segments, not ranges, count",
  );
});

Deno.test("SACK scoreboard: merges, ignores bogus blocks, forgets what is acknowledged", () => {
  const una = 0xffffff00;
  const at = (n: number) => (una + n) >>> 0;
  const board = new SackScoreboard();
  assert.equal(board.update([[at(1000), at(2000)]], una, at(5000)), true);
  assert.equal(board.update([[at(1500), at(2000)]], una, at(5000)), false, "nothing new");
  assert.equal(board.update([[at(0), at(100)], [at(4000), at(6000)]], una, at(5000)), false);
  assert.equal(board.update([[at(3000), at(4000)], [at(2000), at(2500)]], una, at(5000)), true);
  assert.deepEqual(board.ranges, [[at(1000), at(2500)], [at(3000), at(4000)]]);
  board.acknowledge(at(2600));
  assert.deepEqual(board.ranges, [[at(3000), at(4000)]]);
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

Deno.test("congestion control: slow start, avoidance, one cut by 0.7 per episode, timeout", () => {
  const cc = new CongestionControl(1000, 0);
  assert.equal(cc.cwnd, 10_000, "RFC 6928 initial window");
  cc.onNewAck(2000, 2000, 10_000);
  assert.equal(cc.cwnd, 12_000, "slow start, at most 2 MSS per ACK");
  cc.onNewAck(3000, 1000, 2000);
  assert.equal(cc.cwnd, 12_000, "no growth while the window is mostly unused");
  assert.equal(cc.enterRecovery(3000, 15_000), true);
  assert.deepEqual([cc.ssthresh, cc.cwnd], [8400, 8400], "cut by CUBIC's beta");
  assert.equal(cc.enterRecovery(3000, 15_000), false, "already recovering");
  assert.equal(cc.onNewAck(5000, 2000, 12_000), "partial");
  assert.equal(cc.cwnd, 8400, "the window holds during recovery");
  assert.equal(cc.onNewAck(15_000, 10_000, 10_000), "full");
  assert.equal(cc.enterRecovery(15_000, 20_000), true, "a later loss is a new episode");
  assert.equal(cc.cwnd, 5880);
  cc.onNewAck(20_000, 5000, 5880);
  cc.cwnd = 6000;
  cc.onNewAck(26_000, 6000, 6000);
  assert.equal(cc.cwnd, 7000, "avoidance: one MSS per window");
  cc.onTimeout(7000, 30_000);
  assert.deepEqual([cc.cwnd, cc.ssthresh, cc.recover], [1000, 3500, 30_000]);
  assert.equal(cc.enterRecovery(29_000, 30_000), false, "below recover (RFC 6582)");
});

Deno.test("segments in flight: pipe, DupThresh and RACK marking, lost retransmissions", () => {
  const base = 0xfffff000; // sequence numbers wrap during the test
  const at = (i: number) => (base + 1000 * i) >>> 0;
  const log = new SentSegments();
  for (let i = 0; i < 8; i++) log.sent(at(i), at(i + 1), i, false); // segment i sent at i ms
  assert.equal(log.pipe, 8000);
  // Segment 0 delivered at 10 ms (RTT 10): nothing is lost yet.
  log.delivered(at(1), [], 10);
  assert.deepEqual(log.detectLoss(10, 2000), { lost: 0, recheckAt: Infinity });
  assert.equal(log.pipe, 7000);
  // Segments 3 and 4 SACKed at 14 ms: 2000 bytes above 1 and 2, not more than DupThresh,
  // but RACK: both were sent before segment 4 (RTT 10 ms), and are lost once sent more than
  // 10 ms + min RTT / 4 ago: segment 1 (sent at 1 ms) now, segment 2 at 14.5 ms.
  log.delivered(at(1), [[at(3), at(5)]], 14);
  assert.equal(log.pipe, 5000);
  assert.deepEqual(log.detectLoss(14, 2000), { lost: 1, recheckAt: 2 + 10 + 2.5 });
  assert.deepEqual(log.firstLost(), { start: at(1), end: at(2) });
  assert.equal(log.pipe, 4000, "a lost segment is out of the pipe");
  // Segment 5 SACKed too: 3000 bytes above segment 2 (never resent): DupThresh marks it.
  log.delivered(at(1), [[at(3), at(6)]], 15);
  assert.equal(log.detectLoss(15, 2000).lost, 1);
  assert.equal(log.pipe, 2000, "segments 6 and 7");
  // Both resent at 16 ms; the resend of 1 is lost again, 2's arrives with 6 at 26 ms.
  log.sent(at(1), at(2), 16, true);
  log.sent(at(2), at(3), 16, true);
  assert.equal(log.pipe, 4000);
  log.delivered(at(1), [[at(2), at(7)]], 26);
  assert.deepEqual(
    log.detectLoss(26, 2000),
    { lost: 1, recheckAt: 16 + 10 + 2.5 },
    "segment 7 (sent at 7 ms) is lost; the resend of 1, sent just before 2's, is not due yet",
  );
  assert.deepEqual(log.firstLost(), { start: at(7), end: at(8) });
  log.sent(at(7), at(8), 27, true);
  log.sent(at(8), at(9), 27, false);
  log.delivered(at(1), [[at(2), at(9)]], 37);
  assert.equal(log.detectLoss(37, 2000).lost, 1, "the lost resend of 1, found by RACK");
  assert.deepEqual(log.firstLost(), { start: at(1), end: at(2) });
  log.sent(at(1), at(2), 37, true);
  log.delivered(at(9), [], 47);
  assert.equal(log.pipe, 0);
  assert.equal(log.hasLost, false);
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
