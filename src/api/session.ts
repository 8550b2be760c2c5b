// One client connection: where its notifications go and the feeds it subscribed. Its bounds hold
// against a client that races itself: a subscription's slot is taken before anything is awaited,
// and a feed that finishes opening after the connection closed is stopped, not kept.
import { randomUUID } from 'node:crypto';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import type { AlertFeed } from '../subscriptions/alert-feed.ts';

export const MAX_SUBSCRIPTIONS_PER_SESSION = 64;

export class Session {
  readonly #feeds = new Map<string, AlertFeed>();
  /** Subscriptions opening now: they hold their slot from the start. */
  #opening = 0;
  #closed = false;

  /**
   * `notify` returns a promise only when the connection is behind: it resolves once the
   * connection can take more (backpressure for feeds); nothing to wait for is the common case, and
   * costs no promise. `shared`, when given, is an object every connection notified of the same
   * thing passes (the alert a feed delivers): the message is then serialised once for all of them.
   */
  constructor(readonly notify: (method: string, params: Record<string, unknown>, shared?: object) => void | Promise<void>) {}

  /** Opens a feed under a new subscription id, refusing past the per-connection bound. */
  async subscribe(open: () => Promise<AlertFeed>): Promise<{ subscriptionId: string; feed: AlertFeed }> {
    if (this.#closed) throw new OpstreamError(ErrorCodes.Unavailable, 'this connection is closing');
    const held = this.#feeds.size + this.#opening;
    if (held >= MAX_SUBSCRIPTIONS_PER_SESSION) {
      throw new OpstreamError(ErrorCodes.LimitExceeded, `this connection already has ${held} subscriptions (the limit); unsubscribe first`);
    }
    this.#opening += 1;
    let feed: AlertFeed;
    try {
      feed = await open();
    } finally {
      this.#opening -= 1;
    }
    if (this.#closed) {
      await feed.stop();
      throw new OpstreamError(ErrorCodes.Unavailable, 'the connection closed while the subscription was opening');
    }
    const subscriptionId = randomUUID();
    this.#feeds.set(subscriptionId, feed);
    return { subscriptionId, feed };
  }

  async unsubscribe(subscriptionId: string): Promise<void> {
    const feed = this.#feeds.get(subscriptionId);
    if (!feed) throw new OpstreamError(ErrorCodes.NoSuchSubscription, `no subscription ${JSON.stringify(subscriptionId)} on this connection`);
    this.#feeds.delete(subscriptionId);
    await feed.stop();
  }

  /** Forgets a feed that ended on its own; the client is told by the caller. */
  dropped(subscriptionId: string): void {
    this.#feeds.delete(subscriptionId);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const feeds = [...this.#feeds.values()];
    this.#feeds.clear();
    await Promise.allSettled(feeds.map((feed) => feed.stop()));
  }
}
