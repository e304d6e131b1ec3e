/**
 * Congestion control of one connection's send side: slow start with appropriate byte
 * counting (RFC 3465, L = 2), congestion avoidance (one MSS per window), one multiplicative
 * decrease per loss-recovery episode (RFC 6675: the window is cut once when the first loss
 * is detected and not again until everything sent before it is acknowledged) by CUBIC's
 * β = 0.7 (RFC 9438 §4.6) rather than Reno's 0.5, and the loss window after a
 * retransmission timeout. The sender keeps RFC 6675's pipe below `cwnd`, so retransmissions
 * and new data flow during recovery. Initial window per RFC 6928.
 */
import { seqGe } from "../packet/mod.ts";

/** Multiplicative decrease per loss episode (RFC 9438's β_cubic). */
export const LOSS_BETA = 0.7;

/** What a new cumulative ACK means for loss recovery. */
export type AckKind = "normal" | "partial" | "full";

/** The congestion state of one connection's send side. */
export class CongestionControl {
  readonly #mss: number;
  readonly #beta: number;
  /** Congestion window in bytes. */
  cwnd: number;
  /** Slow-start threshold in bytes. */
  ssthresh = Infinity;
  /** Whether loss recovery is in progress. */
  inRecovery = false;
  /** One past the highest sequence number sent when recovery (or the last RTO) began. */
  recover: number;
  #avoidanceBytes = 0;

  /** `iss`: our initial sequence number (the starting `recover`); `beta`: the decrease. */
  constructor(mss: number, iss: number, beta = LOSS_BETA) {
    this.#mss = mss;
    this.#beta = beta;
    this.cwnd = Math.min(10 * mss, Math.max(2 * mss, 14600));
    this.recover = iss;
  }

  /**
   * A cumulative ACK for `acked` new bytes up to `ack`, with `flight` bytes outstanding
   * before it. Returns "partial" while recovery goes on (the window holds), "full" when it
   * just ended.
   */
  onNewAck(ack: number, acked: number, flight: number): AckKind {
    const mss = this.#mss;
    if (this.inRecovery) {
      if (!seqGe(ack, this.recover)) return "partial";
      this.inRecovery = false;
      return "full";
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
   * Loss detected with the cumulative ACK at `ack`: starts a recovery episode (cutting the
   * window by β) and returns true, unless one is running or `ack` is below `recover` (the
   * loss belongs to an episode already answered, RFC 6582 step 2).
   */
  enterRecovery(ack: number, sndMax: number): boolean {
    if (this.inRecovery || !seqGe(ack, this.recover)) return false;
    this.ssthresh = Math.max(Math.floor(this.cwnd * this.#beta), 2 * this.#mss);
    this.cwnd = this.ssthresh;
    this.#avoidanceBytes = 0;
    this.recover = sndMax;
    this.inRecovery = true;
    return true;
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
