/**
 * The sender's record of segments in flight, for loss recovery: each segment's sequence
 * range, when it was last (re)sent, and whether the peer SACKed it or we deem it lost. Loss
 * is detected two ways: RFC 6675's DupThresh (more than `dupThreshBytes` SACKed above a
 * never-resent segment) and RFC 8985's RACK (a segment sent before one the peer has since
 * delivered, by more than the reordering window, is lost — which also finds lost
 * retransmissions without waiting for the retransmission timer). The reordering window
 * starts at a quarter of the minimum RTT and widens by a quarter each time a resend proves
 * needless (the original's ACK came back sooner than any round trip could have brought the
 * resend's), shrinking back after 16 recoveries without one. `pipe` is RFC 6675's
 * estimate of bytes still in the network, which the sender keeps below the congestion window.
 */
import { seqDiff, seqGt } from "../packet/mod.ts";

/** One transmitted segment: [start, end) in sequence space (a FIN counts one). */
interface SentSegment {
  start: number;
  end: number;
  /** When it was last sent (performance.now() ms). */
  sentAt: number;
  /** Transmission order of that send: orders sends that share a clock reading. */
  order: number;
  retransmitted: boolean;
  sacked: boolean;
  lost: boolean;
}

/** Most the reordering window grows to, in quarters of the minimum RTT (RFC 8985 §6.2). */
const MAX_REORDER_MULTIPLIER = 8;
/** Loss recoveries after which a widened reordering window shrinks back (RFC 8985: 16). */
const REORDER_DECAY_RECOVERIES = 16;

/** A segment to resend: its range. */
export interface LostRange {
  start: number;
  end: number;
}

/** Segments sent and not yet cumulatively acknowledged, ascending by sequence. */
export class SentSegments {
  #segments: SentSegment[] = [];
  /** RACK.xmit_ts: the most recently sent segment known delivered, by transmission order. */
  #rackOrder = 0;
  #sends = 0;
  /** RACK.rtt: the RTT measured on that segment's delivery. */
  #rackRtt = 0;
  /** Smallest RTT seen on a segment sent once (ms). */
  #minRtt = Infinity;
  #pipe = 0;
  /** Segments now SACKed, deemed lost, and sent more than once (for the fast paths). */
  #sackedCount = 0;
  #lostCount = 0;
  #resentCount = 0;
  /** RACK.reo_wnd_mult, and recoveries since it last grew. */
  #reorderMultiplier = 1;
  #recoveriesSinceWidened = 0;
  /** Needless resends found by the current `delivered` call. */
  #spurious = 0;

  /** Bytes sent, neither SACKed nor deemed lost nor acknowledged (RFC 6675 pipe). */
  get pipe(): number {
    return this.#pipe;
  }

  /** Whether any segment is deemed lost and awaits its retransmission. */
  get hasLost(): boolean {
    return this.#lostCount > 0;
  }

  /**
   * Records a transmission of [start, end) at `now` (`retransmission`: of bytes sent before):
   * beyond the last segment a new entry; at the start of a recorded one a resend of it.
   * Anything else (a resend not lining up with what was recorded) is not tracked.
   */
  sent(start: number, end: number, now: number, retransmission: boolean): void {
    const segments = this.#segments;
    const last = segments[segments.length - 1];
    const order = ++this.#sends;
    if (!last || !seqGt(last.end, start)) {
      const retransmitted = retransmission;
      segments.push({ start, end, sentAt: now, order, retransmitted, sacked: false, lost: false });
      this.#pipe += seqDiff(end, start);
      if (retransmitted) this.#resentCount++;
      return;
    }
    const segment = segments.find((s) => s.start === start);
    if (!segment) return;
    if (segment.lost || segment.sacked) this.#pipe += seqDiff(segment.end, segment.start);
    if (segment.lost) this.#lostCount--;
    if (segment.sacked) this.#sackedCount--;
    if (!segment.retransmitted) this.#resentCount++;
    segment.sentAt = now;
    segment.order = order;
    segment.retransmitted = true;
    segment.lost = false;
    segment.sacked = false;
  }

  /** The first segment deemed lost, or undefined. */
  firstLost(): LostRange | undefined {
    if (this.#lostCount === 0) return undefined;
    const segment = this.#segments.find((s) => s.lost);
    return segment ? { start: segment.start, end: segment.end } : undefined;
  }

  /** The highest segment sent (a tail loss probe resends it), or undefined. */
  last(): LostRange | undefined {
    const segment = this.#segments[this.#segments.length - 1];
    return segment ? { start: segment.start, end: segment.end } : undefined;
  }

  /** Marks the first unacknowledged segment lost unless resent already (NewReno, no SACK). */
  markFirstLost(): boolean {
    const first = this.#segments[0];
    if (!first || first.lost || first.sacked || first.retransmitted) return false;
    this.#markLost(first);
    return true;
  }

  /**
   * The cumulative ACK reached `una` at `now`, and `sacked` (sorted [start, end) ranges above
   * it) are what the peer holds: forgets acknowledged segments, marks SACKed ones, and
   * advances RACK's most recently delivered segment. Returns how many resends this showed
   * needless (their originals arrived).
   */
  delivered(una: number, sacked: ReadonlyArray<readonly [number, number]>, now: number): number {
    const segments = this.#segments;
    this.#spurious = 0;
    let drop = 0;
    while (drop < segments.length && !seqGt(segments[drop].end, una)) {
      const segment = segments[drop++];
      if (!segment.sacked && !segment.lost) this.#pipe -= seqDiff(segment.end, segment.start);
      if (segment.sacked) this.#sackedCount--;
      if (segment.lost) this.#lostCount--;
      if (segment.retransmitted) this.#resentCount--;
      this.#onDelivery(segment, now);
    }
    if (drop > 0) segments.splice(0, drop);
    if (sacked.length === 0) return this.#spurious;
    let range = 0;
    for (const segment of segments) {
      if (segment.sacked) continue;
      while (range < sacked.length && !seqGt(sacked[range][1], segment.start)) range++;
      if (range === sacked.length) break;
      const [start, end] = sacked[range];
      if (seqDiff(segment.start, start) >= 0 && seqDiff(end, segment.end) >= 0) {
        if (!segment.lost) this.#pipe -= seqDiff(segment.end, segment.start);
        else this.#lostCount--;
        this.#sackedCount++;
        segment.sacked = true;
        segment.lost = false;
        this.#onDelivery(segment, now);
      }
    }
    return this.#spurious;
  }

  /**
   * Marks lost every segment the peer's SACKs or RACK show lost at `now`. Returns how many
   * were newly marked, and when RACK would mark the next one if nothing else arrives
   * (Infinity: none pending).
   */
  detectLoss(
    now: number,
    dupThreshBytes: number,
    srtt = Infinity,
  ): { lost: number; recheckAt: number } {
    const segments = this.#segments;
    // Nothing SACKed or resent: segments are in transmission order, so if the first was sent
    // after RACK's segment, every one was and none can be lost yet (the common case, cheap).
    if (
      this.#sackedCount === 0 && this.#resentCount === 0 &&
      (segments.length === 0 || segments[0].order >= this.#rackOrder)
    ) {
      return { lost: 0, recheckAt: Infinity };
    }
    // A quarter of the minimum RTT (but of no less than half the smoothed one: reordered
    // ACKs can make the minimum meaninglessly small), times the multiplier, at most SRTT.
    const base = Number.isFinite(srtt) ? Math.max(this.#minRtt, srtt / 2) : this.#minRtt;
    const reorderWindow = Number.isFinite(base)
      ? Math.min(srtt, (base / 4) * this.#reorderMultiplier)
      : 0;
    let lost = 0;
    let recheckAt = Infinity;
    let sackedAbove = 0;
    for (let i = segments.length - 1; i >= 0; i--) {
      const segment = segments[i];
      if (segment.sacked) {
        sackedAbove += seqDiff(segment.end, segment.start);
        continue;
      }
      if (segment.lost) continue;
      if (!segment.retransmitted && sackedAbove > dupThreshBytes) {
        this.#markLost(segment);
        lost++;
        continue;
      }
      if (segment.order >= this.#rackOrder) continue; // not sent before a delivered one
      const due = segment.sentAt + this.#rackRtt + reorderWindow;
      if (due <= now) {
        this.#markLost(segment);
        lost++;
      } else {
        recheckAt = Math.min(recheckAt, due);
      }
    }
    return { lost, recheckAt };
  }

  /**
   * A resend proved needless (its original was delivered, or the peer reported a duplicate
   * with a D-SACK, RFC 2883): widens the reordering window by a quarter of the RTT.
   */
  spuriousResend(): void {
    this.#spurious++;
    this.#reorderMultiplier = Math.min(MAX_REORDER_MULTIPLIER, this.#reorderMultiplier + 1);
    this.#recoveriesSinceWidened = 0;
  }

  /** A loss recovery began: after 16 without a needless resend, the window shrinks back. */
  onRecovery(): void {
    if (++this.#recoveriesSinceWidened >= REORDER_DECAY_RECOVERIES) {
      this.#reorderMultiplier = 1;
      this.#recoveriesSinceWidened = 0;
    }
  }

  /** Forgets everything (after a retransmission timeout: the sender goes back to SND.UNA). */
  clear(): void {
    this.#segments = [];
    this.#pipe = 0;
    this.#sackedCount = this.#lostCount = this.#resentCount = 0;
    this.#rackOrder = this.#sends;
  }

  #markLost(segment: SentSegment): void {
    segment.lost = true;
    this.#lostCount++;
    this.#pipe -= seqDiff(segment.end, segment.start);
  }

  /** RFC 8985 step 2: a delivery moves RACK forward unless it may be a spurious resend's. */
  #onDelivery(segment: SentSegment, now: number): void {
    const rtt = now - segment.sentAt;
    if (!segment.retransmitted) this.#minRtt = Math.min(this.#minRtt, rtt);
    else if (rtt < this.#minRtt) {
      // Acknowledges the original, not the resend: the loss was reordering.
      this.spuriousResend();
      return;
    }
    if (segment.order > this.#rackOrder) {
      this.#rackOrder = segment.order;
      this.#rackRtt = rtt;
    }
  }
}
