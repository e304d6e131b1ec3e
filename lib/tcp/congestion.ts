/**
 * NewReno congestion control: slow start with appropriate byte counting (RFC 3465, L = 2),
 * congestion avoidance, fast retransmit/fast recovery (RFC 5681) with NewReno partial ACKs
 * (RFC 6582), and the loss window after a retransmission timeout. Initial window per RFC 6928.
 */
import { seqGe } from "../packet/mod.ts";

/** What a new cumulative ACK means for fast recovery. */
export type AckKind = "normal" | "partial" | "full";

/** The congestion state of one connection's send side. */
export class NewReno {
  readonly #mss: number;
  /** Congestion window in bytes. */
  cwnd: number;
  /** Slow-start threshold in bytes. */
  ssthresh = Infinity;
  /** Whether fast recovery is in progress. */
  inRecovery = false;
  /** One past the highest sequence number sent when recovery (or the last RTO) began. */
  recover: number;
  #avoidanceBytes = 0;

  /** `iss`: our initial sequence number (the starting `recover`). */
  constructor(mss: number, iss: number) {
    this.#mss = mss;
    this.cwnd = Math.min(10 * mss, Math.max(2 * mss, 14600));
    this.recover = iss;
  }

  /**
   * A cumulative ACK for `acked` new bytes up to `ack`, with `flight` bytes outstanding
   * before it. Returns "partial" when the caller must retransmit the next unacknowledged
   * segment (RFC 6582 step 5), "full" when recovery just ended.
   */
  onNewAck(ack: number, acked: number, flight: number): AckKind {
    const mss = this.#mss;
    if (this.inRecovery) {
      if (seqGe(ack, this.recover)) {
        this.inRecovery = false;
        this.cwnd = Math.min(this.ssthresh, Math.max(flight - acked, mss) + mss);
        return "full";
      }
      this.cwnd = Math.max(mss, this.cwnd - acked + (acked >= mss ? mss : 0));
      return "partial";
    }
    // Only a window that was (nearly) in use may grow (RFC 7661's spirit).
    if (2 * flight < this.cwnd) return "normal";
    if (this.cwnd < this.ssthresh) {
      this.cwnd += Math.min(acked, 2 * mss);
    } else {
      this.#avoidanceBytes += acked;
      if (this.#avoidanceBytes >= this.cwnd) {
        this.#avoidanceBytes -= this.cwnd;
        this.cwnd += mss;
      }
    }
    return "normal";
  }

  /**
   * Loss detected at `ack` (three duplicate ACKs, or SACKs): enters fast recovery and returns
   * true if the caller must fast-retransmit (not when `ack` is below `recover`, RFC 6582
   * step 2, nor when already recovering).
   */
  enterRecovery(ack: number, flight: number, sndMax: number): boolean {
    if (this.inRecovery || !seqGe(ack, this.recover)) return false;
    this.ssthresh = Math.max(flight / 2, 2 * this.#mss);
    this.cwnd = this.ssthresh + 3 * this.#mss;
    this.recover = sndMax;
    this.inRecovery = true;
    return true;
  }

  /** A further duplicate ACK during recovery: inflate the window by one segment. */
  onDuplicateInRecovery(): void {
    this.cwnd += this.#mss;
  }

  /** A retransmission timeout with `flight` bytes outstanding and `sndMax` the highest sent. */
  onTimeout(flight: number, sndMax: number): void {
    this.ssthresh = Math.max(flight / 2, 2 * this.#mss);
    this.cwnd = this.#mss;
    this.inRecovery = false;
    this.recover = sndMax;
    this.#avoidanceBytes = 0;
  }
}
