/**
 * netem-like packet impairment in user space, for kernels without sch_netem: drops a share
 * of packets, delays the rest by a fixed time, and lets a share of those through at once
 * (ahead of the delayed ones, so they arrive reordered) — `netem loss L reorder R delay D`.
 */

/** Shares (0-1) and delay; the seed makes runs repeatable. */
export interface ImpairmentOptions {
  loss: number;
  reorder: number;
  delayMs: number;
  seed: number;
}

/** One direction's impairment in front of `deliver`. */
export class Impairment {
  readonly #options: ImpairmentOptions;
  readonly #deliver: (packet: Uint8Array) => void;
  #state: number;
  /** Packets dropped. */
  dropped = 0;
  /** Packets let through ahead of delayed ones. */
  reordered = 0;

  constructor(options: ImpairmentOptions, deliver: (packet: Uint8Array) => void) {
    this.#options = options;
    this.#deliver = deliver;
    this.#state = options.seed >>> 0 || 1;
  }

  /** Takes one packet (it is kept until delivered). */
  push(packet: Uint8Array): void {
    const { loss, reorder, delayMs } = this.#options;
    if (loss > 0 && this.#random() < loss) {
      this.dropped++;
      return;
    }
    if (delayMs === 0) {
      this.#deliver(packet);
    } else if (reorder > 0 && this.#random() < reorder) {
      this.reordered++;
      this.#deliver(packet);
    } else {
      setTimeout(() => this.#deliver(packet), delayMs);
    }
  }

  /** xorshift32 in [0, 1). */
  #random(): number {
    let x = this.#state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.#state = x;
    return x / 0x100000000;
  }
}
