/**
 * A set of listeners for one kind of event: any number of users subscribe, and
 * none can overwrite another. Listeners run in the order they were added; one
 * that throws does not stop the others (the first error is rethrown after all ran).
 */

/** Removes the listener it was returned for; calling it twice is harmless. */
export type Unsubscribe = () => void;

/** Listeners of events of type `T`. */
export class Listeners<T> {
  #listeners: ((event: T) => void)[] = [];

  /** Adds a listener; returns the function that removes it. */
  add(listener: (event: T) => void): Unsubscribe {
    this.#listeners = [...this.#listeners, listener];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /** Calls every listener with `event`. */
  emit(event: T): void {
    const listeners = this.#listeners;
    if (listeners.length === 1) return listeners[0](event);
    let failure: { error: unknown } | undefined;
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }
}
