// How the runtime tells a driver to stop one work: a WorkSignal (the part of an AbortSignal drivers
// use) that is not an EventTarget. Every state with work makes one, so an AbortController there
// cost about 7% of the write path's CPU and a fifth of a 100,000-entity restart, where each idle
// VM resumes its watch.
import type { WorkSignal } from './drivers/driver.ts';

export class WorkStop implements WorkSignal {
  #aborted = false;
  #listeners: Array<() => void> = [];

  /** `onListenerError`: where a listener that throws is reported; the other listeners still run. */
  constructor(private readonly onListenerError: (error: unknown) => void) {}

  get aborted(): boolean {
    return this.#aborted;
  }

  /** As on an AbortSignal: each listener once, however often it is added, and never after the abort. */
  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.#aborted && !this.#listeners.includes(listener)) this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.#listeners.indexOf(listener);
    if (at >= 0) this.#listeners.splice(at, 1);
  }

  /**
   * Tells the work to stop: its listeners run in the order they were added (one removed by an
   * earlier one does not), then are let go.
   */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    for (const listener of [...this.#listeners]) {
      if (!this.#listeners.includes(listener)) continue;
      try {
        listener();
      } catch (error) {
        // The runtime aborts from inside its transitions: a driver's failing clean-up must not end one.
        try {
          this.onListenerError(error);
        } catch {
          // Nor may the report of it: the other listeners still run.
        }
      }
    }
    this.#listeners = [];
  }
}
