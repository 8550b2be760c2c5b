// Stall limits of every running work under one timer. A work that reports only moves its
// deadline: progress reports are the write path's most frequent event, and re-arming a timer per
// report (clearTimeout, setTimeout, a timer object each) was a visible share of its profile.

type Watched = { deadline: number; limitMs: number; onStall: () => void };

export class StallWatch {
  readonly #watched = new Map<object, Watched>();
  #timer: NodeJS.Timeout | undefined;
  /** When the timer fires; Infinity when none is set. */
  #timerAt = Number.POSITIVE_INFINITY;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Calls `onStall` once if `work` goes `limitMs` without a touch. Watching it again restarts it. */
  watch(work: object, limitMs: number, onStall: () => void): void {
    const deadline = this.now() + limitMs;
    this.#watched.set(work, { deadline, limitMs, onStall });
    this.#wakeBy(deadline);
  }

  /** `work` reported: its limit counts from now. */
  touch(work: object): void {
    const watched = this.#watched.get(work);
    // The timer may now fire early; it then finds the later deadline and sleeps again.
    if (watched) watched.deadline = this.now() + watched.limitMs;
  }

  forget(work: object): void {
    this.#watched.delete(work);
    if (this.#watched.size === 0) this.#clearTimer();
  }

  stop(): void {
    this.#watched.clear();
    this.#clearTimer();
  }

  #wakeBy(deadline: number): void {
    if (deadline >= this.#timerAt) return;
    this.#clearTimer();
    this.#timerAt = deadline;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, deadline - this.now()));
    this.#timer.unref();
  }

  #clearTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.now();
    let next = Number.POSITIVE_INFINITY;
    const stalled: Array<() => void> = [];
    for (const [work, watched] of this.#watched) {
      if (watched.deadline <= now) {
        this.#watched.delete(work);
        stalled.push(watched.onStall);
      } else {
        next = Math.min(next, watched.deadline);
      }
    }
    if (next < Number.POSITIVE_INFINITY) this.#wakeBy(next);
    for (const onStall of stalled) {
      // One failing handler must not keep the others from running; it fails as its own timer would have.
      try {
        onStall();
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
