// Alerts received on any subscription, kept until some waitForEvent takes them — the poll()
// of the seed: one waiter can watch a hundred VMs, many waiters can share one connection.
import type { AlertNotification } from '../domain/alert.ts';
import type { AlertFilter } from '../filters/alert-filter.ts';
import { TimeoutError } from './errors.ts';

type Waiter = { filter: AlertFilter; resolve(alert: AlertNotification): void; reject(error: Error): void };

export class AlertInbox {
  readonly #alerts: AlertNotification[] = [];
  readonly #waiters = new Set<Waiter>();
  /** Sequences seen lately: overlapping subscriptions deliver an alert once to user code. */
  readonly #seen = new Set<number>();
  #dropped = 0;

  constructor(private readonly capacity = 10_000) {}

  /** How many alerts were dropped because nobody took them before the inbox filled up. */
  get dropped(): number {
    return this.#dropped;
  }

  put(alert: AlertNotification): void {
    if (this.#seen.has(alert.seq)) return;
    this.#remember(alert.seq);
    for (const waiter of this.#waiters) {
      if (waiter.filter.matches(alert.alertName)) {
        this.#waiters.delete(waiter);
        waiter.resolve(alert);
        return;
      }
    }
    this.#alerts.push(alert);
    if (this.#alerts.length > this.capacity) {
      this.#alerts.shift();
      this.#dropped += 1;
    }
  }

  /** The oldest unclaimed alert the filter matches, or the next one to arrive within the timeout. */
  take(filter: AlertFilter, timeoutMs: number): Promise<AlertNotification> {
    const index = this.#alerts.findIndex((alert) => filter.matches(alert.alertName));
    if (index >= 0) return Promise.resolve(this.#alerts.splice(index, 1)[0] as AlertNotification);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        filter,
        resolve: (alert) => {
          clearTimeout(timer);
          resolve(alert);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new TimeoutError(`no alert matching ${JSON.stringify(filter.filter)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** Fails every pending wait (the connection dropped), or those on one filter. */
  rejectWaiters(error: Error, only?: Pick<AlertFilter, 'filter' | 'filterType'>): void {
    for (const waiter of [...this.#waiters]) {
      if (only && (waiter.filter.filter !== only.filter || waiter.filter.filterType !== only.filterType)) continue;
      this.#waiters.delete(waiter);
      waiter.reject(error);
    }
  }

  #remember(seq: number): void {
    this.#seen.add(seq);
    if (this.#seen.size > 4 * this.capacity) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
  }
}
