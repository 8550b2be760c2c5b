// The client's subscriptions and their lifetimes. `subscribe` holds one until `unsubscribe`;
// `waitForEvent` holds one while it waits, and such an implicit subscription lingers a while
// after its last wait (so a loop of waits misses nothing between them), then is dropped — at once
// if the agent refuses a new one for the per-connection limit. So a program that waits on a
// thousand filters one after another never runs into the limit of 64.
import { ErrorCodes } from '../domain/errors.ts';
import { retryDelayMs, type RetryPolicy } from '../domain/retry-policy.ts';
import { compileFilter, type AlertFilter, type FilterType } from '../filters/alert-filter.ts';
import { RpcError } from './errors.ts';
import type { Transport } from './transport.ts';

export type ClientSubscription = {
  readonly key: string;
  readonly filter: AlertFilter;
  id: Promise<string>;
  /** The agent's id once known: a `subscriptionEnded` names it. */
  currentId?: string;
  /** Alerts up to this stream sequence were delivered: a resubscription starts after it. */
  lastSeq: number;
  /** subscribe() calls not yet matched by unsubscribe(). */
  holds: number;
  /** waitForEvent() calls waiting on it now. */
  waiters: number;
  /** Order in which subscriptions became idle: the oldest idle one is dropped first. */
  idleSince: number;
  linger?: NodeJS.Timeout;
};

export class SubscriptionTable {
  readonly #byKey = new Map<string, ClientSubscription>();
  #idleClock = 0;

  constructor(
    private readonly transport: Transport,
    private readonly options: { lingerMs: number; retry: RetryPolicy },
  ) {}

  get size(): number {
    return this.#byKey.size;
  }

  values(): IterableIterator<ClientSubscription> {
    return this.#byKey.values();
  }

  /** The subscription for this filter, opened (after `since`, default now) when there is none. */
  async acquire(filter: string, filterType: FilterType, use: 'hold' | 'wait', since?: number): Promise<ClientSubscription> {
    const key = `${filterType}:${filter}`;
    let subscription = this.#byKey.get(key);
    if (!subscription) {
      subscription = { key, filter: compileFilter(filter, filterType), id: Promise.resolve(''), lastSeq: since ?? 0, holds: 0, waiters: 0, idleSince: 0 };
      const opened = this.#open(subscription, since);
      const created = subscription;
      subscription.id = opened.then(({ id }) => (created.currentId = id));
      subscription.id.catch(() => undefined); // the failure is thrown below, to this caller
      this.#byKey.set(key, subscription);
      try {
        const { seq } = await opened;
        subscription.lastSeq = Math.max(subscription.lastSeq, seq);
      } catch (error) {
        this.#byKey.delete(key);
        throw error;
      }
    }
    clearTimeout(subscription.linger);
    subscription.linger = undefined;
    if (use === 'hold') subscription.holds += 1;
    else subscription.waiters += 1;
    await subscription.id;
    return subscription;
  }

  /** A waitForEvent is over: an implicit subscription nobody uses any more starts to linger. */
  doneWaiting(subscription: ClientSubscription): void {
    subscription.waiters = Math.max(0, subscription.waiters - 1);
    if (!this.#idle(subscription) || this.#byKey.get(subscription.key) !== subscription) return;
    subscription.idleSince = ++this.#idleClock;
    subscription.linger = setTimeout(() => void this.#drop(subscription), this.options.lingerMs);
    subscription.linger.unref();
  }

  /** Releases one subscribe(); the last one drops the subscription unless a wait still uses it. */
  async release(filter: string, filterType: FilterType): Promise<void> {
    const subscription = this.#byKey.get(`${filterType}:${filter}`);
    if (!subscription || subscription.holds === 0) {
      throw new Error(`not subscribed to ${JSON.stringify(filter)} (${filterType}): nothing to unsubscribe`);
    }
    subscription.holds -= 1;
    if (this.#idle(subscription)) await this.#drop(subscription);
  }

  /** After a reconnect: resubscribe after the last delivered sequence, as the retry policy allows. */
  async resubscribe(subscription: ClientSubscription): Promise<'done' | 'dropped' | 'gave-up'> {
    const { filter, filterType } = subscription.filter;
    for (let retry = 1; this.transport.connected; retry += 1) {
      try {
        const { id } = await this.transport.subscribe(filter, filterType, subscription.lastSeq);
        subscription.id = Promise.resolve(id);
        subscription.currentId = id;
        return 'done';
      } catch {
        const delay = retryDelayMs(this.options.retry, retry);
        if (delay === undefined) return 'gave-up';
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    return 'dropped';
  }

  /** The subscription the agent knows by this id, if it is still ours. */
  byAgentId(id: string): ClientSubscription | undefined {
    for (const subscription of this.#byKey.values()) if (subscription.currentId === id) return subscription;
    return undefined;
  }

  /** Forgets a subscription the agent ended and the client could not renew: the next wait opens a new one. */
  forget(subscription: ClientSubscription): void {
    if (this.#byKey.get(subscription.key) !== subscription) return;
    clearTimeout(subscription.linger);
    this.#byKey.delete(subscription.key);
  }

  clear(): void {
    for (const subscription of this.#byKey.values()) clearTimeout(subscription.linger);
    this.#byKey.clear();
  }

  #idle(subscription: ClientSubscription): boolean {
    return subscription.holds === 0 && subscription.waiters === 0;
  }

  /** Opens on the agent; refused for the per-connection limit, drops the oldest idle one and tries again. */
  async #open(subscription: ClientSubscription, since: number | undefined): Promise<{ id: string; seq: number }> {
    const { filter, filterType } = subscription.filter;
    for (;;) {
      try {
        return await this.transport.subscribe(filter, filterType, since);
      } catch (error) {
        const idle = this.#oldestIdle(subscription);
        if (!(error instanceof RpcError && error.code === ErrorCodes.LimitExceeded) || !idle) throw error;
        await this.#drop(idle);
      }
    }
  }

  #oldestIdle(except: ClientSubscription): ClientSubscription | undefined {
    let oldest: ClientSubscription | undefined;
    for (const candidate of this.#byKey.values()) {
      if (candidate === except || !this.#idle(candidate)) continue;
      if (!oldest || candidate.idleSince < oldest.idleSince) oldest = candidate;
    }
    return oldest;
  }

  async #drop(subscription: ClientSubscription): Promise<void> {
    if (this.#byKey.get(subscription.key) !== subscription || !this.#idle(subscription)) return;
    clearTimeout(subscription.linger);
    this.#byKey.delete(subscription.key);
    // A subscription that died with the connection needs no unsubscribe; the agent forgot it.
    if (!this.transport.connected) return;
    await this.transport.unsubscribe(await subscription.id).catch(() => undefined);
  }
}
