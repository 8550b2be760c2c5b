import { randomUUID } from 'node:crypto';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import type { AlertFeed } from '../subscriptions/alert-feed.ts';

export const MAX_SUBSCRIPTIONS_PER_SESSION = 64;

/** One client connection: where its notifications go and the feeds it subscribed. */
export class Session {
  readonly #feeds = new Map<string, AlertFeed>();

  /** `notify` resolves when the connection can take more (backpressure for feeds). */
  constructor(readonly notify: (method: string, params: Record<string, unknown>) => Promise<void>) {}

  /** Opens a feed under a new subscription id, refusing past the per-connection bound. */
  async subscribe(open: () => Promise<AlertFeed>): Promise<{ subscriptionId: string; feed: AlertFeed }> {
    if (this.#feeds.size >= MAX_SUBSCRIPTIONS_PER_SESSION) {
      throw new OpstreamError(
        ErrorCodes.LimitExceeded,
        `this connection already has ${this.#feeds.size} subscriptions (the limit); unsubscribe first`,
      );
    }
    const feed = await open();
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

  async close(): Promise<void> {
    const feeds = [...this.#feeds.values()];
    this.#feeds.clear();
    await Promise.allSettled(feeds.map((feed) => feed.stop()));
  }
}
