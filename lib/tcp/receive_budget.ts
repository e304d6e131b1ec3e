/**
 * Receive memory and connection slots that several TCP stacks may share (every session of a
 * connector): a connection reserves the bytes it may have to hold — unread data, the chunk the
 * application is working on, and the window it advertised — so the sum of reservations bounds
 * what all connections hold together. Windows are only advertised out of a reservation.
 */

/** Connection slots and receive bytes shared by stacks. */
export interface TcpSharedBudget {
  /** Bytes each connection keeps reserved from `enter` until it is gone. */
  readonly floor: number;
  /** A SYN would start a connection: true admits it (counted, `floor` bytes reserved). */
  enter(): boolean;
  /** An admitted connection left the stack (its bytes are released separately). */
  leave(): void;
  /** Up to `wanted` more bytes for a connection's window: returns how many, now reserved. */
  reserve(wanted: number): number;
  /** Gives back reserved bytes. */
  release(bytes: number): void;
}

/** No sharing: every connection is admitted and may have the window it asks for. */
export const UNLIMITED_BUDGET: TcpSharedBudget = {
  floor: 0,
  enter: () => true,
  leave: () => {},
  reserve: (wanted) => wanted,
  release: () => {},
};

/** One connection's reservation out of a shared budget. */
export class ReceiveReservation {
  readonly #budget: TcpSharedBudget;
  #held: number;

  /** Starts with the floor `budget.enter()` reserved for this connection. */
  constructor(budget: TcpSharedBudget) {
    this.#budget = budget;
    this.#held = budget.floor;
  }

  /** Bytes reserved now. */
  get held(): number {
    return this.#held;
  }

  /**
   * The connection has `promised` bytes (unread, in the application's hands, window open) and
   * wants to promise `wanted` more: returns how many it may (at most `wanted`), reserving
   * from the budget what its reservation does not already cover.
   */
  grow(promised: number, wanted: number): number {
    const slack = Math.max(0, this.#held - promised);
    if (wanted <= slack) return wanted;
    const extra = this.#budget.reserve(wanted - slack);
    this.#held += extra;
    return slack + extra;
  }

  /** Gives back what exceeds `promised` (keeping the floor while the connection is `live`). */
  settle(promised: number, live: boolean): void {
    const keep = Math.max(promised, live ? this.#budget.floor : 0);
    if (keep >= this.#held) return;
    this.#budget.release(this.#held - keep);
    this.#held = keep;
  }
}
