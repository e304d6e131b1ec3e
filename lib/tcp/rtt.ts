/** The retransmission timeout of RFC 6298: SRTT/RTTVAR smoothing, bounds, and backoff. */

/** Clock granularity G of RFC 6298 (ms). */
const GRANULARITY_MS = 1;

/** One connection's RTT estimate and current retransmission timeout. */
export class RttEstimator {
  readonly #minRto: number;
  readonly #maxRto: number;
  #srtt = 0;
  #rttvar = 0;
  #hasSample = false;
  #rto: number;

  /** Starts at `initialRto` until the first sample; every RTO is kept within [min, max]. */
  constructor(initialRto: number, minRto: number, maxRto: number) {
    this.#minRto = minRto;
    this.#maxRto = maxRto;
    this.#rto = this.#clamp(initialRto);
  }

  /** The current retransmission timeout in ms, backoff included. */
  get rto(): number {
    return this.#rto;
  }

  /** The smoothed RTT in ms, or undefined before the first sample. */
  get srtt(): number | undefined {
    return this.#hasSample ? this.#srtt : undefined;
  }

  /** Takes an RTT measurement (ms) of a segment that was not retransmitted (Karn). */
  sample(rtt: number): void {
    if (!this.#hasSample) {
      this.#srtt = rtt;
      this.#rttvar = rtt / 2;
      this.#hasSample = true;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rtt);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rtt;
    }
    this.#rto = this.#clamp(this.#srtt + Math.max(GRANULARITY_MS, 4 * this.#rttvar));
  }

  /** Doubles the timeout after a retransmission timeout (RFC 6298 5.5), up to the maximum. */
  backoff(): void {
    this.#rto = this.#clamp(this.#rto * 2);
  }

  #clamp(rto: number): number {
    return Math.min(this.#maxRto, Math.max(this.#minRto, rto));
  }
}
