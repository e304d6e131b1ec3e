/**
 * One timer for many deadlines: a min-heap of (deadline, item) and a single
 * `setTimeout` armed for the earliest one. An item has one live entry; moving
 * its deadline later keeps the early entry, which on surfacing finds the item
 * not yet due and re-queues it, so frequent updates do not grow the heap.
 */

interface Entry<T> {
  at: number;
  item: T;
}

/** Schedules `onDue(items)` calls at each item's deadline (ms on `performance.now()`'s clock). */
export class DeadlineScheduler<T> {
  readonly #heap: Entry<T>[] = [];
  /**
   * Each item's deadline (`at`) and the time of its one live heap entry
   * (`queuedAt`); entries whose time differs from `queuedAt` are stale.
   */
  readonly #deadlines = new Map<T, { at: number; queuedAt: number }>();
  readonly #onDue: (items: T[]) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  constructor(onDue: (items: T[]) => void) {
    this.#onDue = onDue;
  }

  /** Sets (or with `Infinity`, clears) an item's deadline. */
  set(item: T, at: number): void {
    if (at === Infinity) {
      this.#deadlines.delete(item);
      return;
    }
    let state = this.#deadlines.get(item);
    if (!state) {
      state = { at, queuedAt: Infinity };
      this.#deadlines.set(item, state);
    }
    state.at = at;
    if (at < state.queuedAt) {
      state.queuedAt = at;
      this.#push({ at, item });
      this.#arm();
    }
  }

  /** Forgets an item. */
  delete(item: T): void {
    this.#deadlines.delete(item);
  }

  /** Number of items with a deadline. */
  get size(): number {
    return this.#deadlines.size;
  }

  /** Stops the timer and forgets every item. */
  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#heap.length = 0;
    this.#deadlines.clear();
  }

  #arm(): void {
    // Drop superseded entries first, so they never wake the timer for nothing.
    while (this.#heap.length > 0) {
      const { item, at } = this.#heap[0];
      if (this.#deadlines.get(item)?.queuedAt === at) break;
      this.#pop();
    }
    const top = this.#heap[0];
    if (!top || top.at >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = top.at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, top.at - performance.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    const due: T[] = [];
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const { item, at } = this.#pop();
      const state = this.#deadlines.get(item);
      if (!state || state.queuedAt !== at) continue;
      state.queuedAt = Infinity;
      if (state.at <= now) {
        this.#deadlines.delete(item);
        due.push(item);
      } else {
        // The deadline moved later after this entry was queued: queue the real one.
        state.queuedAt = state.at;
        this.#push({ at: state.at, item });
      }
    }
    this.#arm();
    if (due.length > 0) this.#onDue(due);
  }

  #push(entry: Entry<T>): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].at <= heap[i].at) break;
      [heap[parent], heap[i]] = [heap[i], heap[parent]];
      i = parent;
    }
  }

  #pop(): Entry<T> {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1, right = left + 1;
        let smallest = i;
        if (left < heap.length && heap[left].at < heap[smallest].at) smallest = left;
        if (right < heap.length && heap[right].at < heap[smallest].at) smallest = right;
        if (smallest === i) break;
        [heap[smallest], heap[i]] = [heap[i], heap[smallest]];
        i = smallest;
      }
    }
    return top;
  }
}
