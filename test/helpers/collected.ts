// What a test collects as it arrives (alerts, WebSocket frames), and a wait for the first item
// that satisfies a predicate — already there or still to come.
export class Collected<T> {
  readonly items: T[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(private readonly describe: (items: readonly T[]) => string) {}

  push(item: T): void {
    this.items.push(item);
    for (const wake of this.#waiters) wake();
  }

  until(predicate: (item: T) => boolean, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.items.find(predicate);
        if (!found) return;
        cleanup();
        resolve(found);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`nothing matching within ${timeoutMs} ms; ${this.describe(this.items)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}
