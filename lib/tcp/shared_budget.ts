/**
 * A `TcpSharedBudget` with fixed bounds: at most `maxConnections` connections and `bytes` of
 * receive reservations across every stack that uses it. Each connection reserves a floor
 * when it opens (refused with a RST when that does not fit); windows grow beyond the floor
 * only out of the budget's spare part — what exceeds a quarter of it, kept free so that new
 * connections still get their floor — and one step takes at most an eighth of that spare part,
 * so windows shrink as the budget fills. The sum of reservations never exceeds `bytes`.
 */
import type { TcpSharedBudget } from "./receive_budget.ts";

/** Floor reserved per connection unless told otherwise. */
export const DEFAULT_RECEIVE_FLOOR = 8 * 1024;
/** Fraction of the budget window growth leaves free for new connections' floors. */
const KEEP_FREE = 1 / 4;
/** Fraction of the spare part one reservation may take. */
const STEP_SHARE = 1 / 8;

/** Bounds of a `SharedTcpBudget`. */
export interface SharedTcpBudgetOptions {
  /** Connections at once, in every state (half-open and TIME_WAIT included). */
  maxConnections: number;
  /** Receive bytes reserved at once, across all connections. */
  bytes: number;
  /** Bytes each connection reserves when it opens (default DEFAULT_RECEIVE_FLOOR). */
  floor?: number;
}

/** Why a connection was refused. */
export type BudgetRefusal = "connections" | "memory";

/** Gauges and totals of a `SharedTcpBudget`. */
export interface SharedTcpBudgetStats {
  /** Gauge: connections admitted and not yet gone. */
  connections: number;
  /** Gauge: receive bytes reserved now. */
  bytesInUse: number;
  /** Most receive bytes ever reserved at once. */
  bytesPeak: number;
  /** SYNs refused because `maxConnections` connections were open. */
  refusedConnections: number;
  /** SYNs refused because the budget could not reserve a floor. */
  refusedMemory: number;
}

/** Connection slots and receive memory shared by TCP stacks. */
export class SharedTcpBudget implements TcpSharedBudget {
  readonly floor: number;
  readonly stats: SharedTcpBudgetStats = {
    connections: 0,
    bytesInUse: 0,
    bytesPeak: 0,
    refusedConnections: 0,
    refusedMemory: 0,
  };
  readonly #maxConnections: number;
  readonly #bytes: number;
  readonly #keepFree: number;
  readonly #onRefused: (why: BudgetRefusal) => void;

  /** `onRefused` hears of each refused connection (for a log). */
  constructor(options: SharedTcpBudgetOptions, onRefused: (why: BudgetRefusal) => void = () => {}) {
    this.floor = options.floor ?? DEFAULT_RECEIVE_FLOOR;
    if (!(options.bytes >= this.floor)) {
      throw new RangeError(`TCP buffer budget ${options.bytes} is below the floor ${this.floor}`);
    }
    this.#maxConnections = options.maxConnections;
    this.#bytes = options.bytes;
    this.#keepFree = Math.floor(options.bytes * KEEP_FREE);
    this.#onRefused = onRefused;
  }

  /** The budget in bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Admits a connection if a slot and its floor are free. */
  enter(): boolean {
    const stats = this.stats;
    let why: BudgetRefusal | undefined;
    if (stats.connections >= this.#maxConnections) why = "connections";
    else if (this.#bytes - stats.bytesInUse < this.floor) why = "memory";
    if (why) {
      if (why === "connections") stats.refusedConnections++;
      else stats.refusedMemory++;
      this.#onRefused(why);
      return false;
    }
    stats.connections++;
    this.#take(this.floor);
    return true;
  }

  /** A connection is gone. */
  leave(): void {
    this.stats.connections--;
  }

  /** Window growth beyond a floor: an eighth of what exceeds the part kept free, at most. */
  reserve(wanted: number): number {
    const spare = this.#bytes - this.stats.bytesInUse - this.#keepFree;
    const grant = Math.max(0, Math.min(wanted, Math.floor(spare * STEP_SHARE)));
    this.#take(grant);
    return grant;
  }

  /** Gives bytes back. */
  release(bytes: number): void {
    this.stats.bytesInUse -= bytes;
  }

  #take(bytes: number): void {
    const stats = this.stats;
    stats.bytesInUse += bytes;
    if (stats.bytesInUse > stats.bytesPeak) stats.bytesPeak = stats.bytesInUse;
  }
}
