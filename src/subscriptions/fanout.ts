// One read of the alert stream per agent, fanned out in memory to every subscription. A hundred
// subscribers cost the server one consumer, not a hundred, and each record is checked and parsed
// once. What a subscriber receives is still only what JetStream has stored: the shared read is an
// ordinary consumer of the stream, so persist-before-visible holds.
//
// A subscription that starts in the past (`since`) first catches up through a consumer of its own;
// meanwhile the shared read only notes the newest matching record it saw. Once the catch-up has
// delivered at least that far, the subscription joins the shared read in one synchronous step —
// nothing missed, nothing twice, however far behind the shared read itself is (it may be working
// through a burst). A live subscriber that falls too far behind is ended with the sequence to
// resume from, never buffered without bound and never allowed to hold the others back.
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Alert } from '../domain/alert.ts';
import type { AlertFilter } from '../filters/alert-filter.ts';
import { createLogger } from '../log.ts';
import { judgeAlertRecord } from '../nats/alert-record.ts';
import { orderedFrom, ResumingConsume } from '../nats/resuming-consume.ts';
import type { HistorySeal } from '../security/history-seal.ts';
import { consumerFilter, type AlertFeed, type FeedAlert } from './alert-feed.ts';

const logger = createLogger('fanout');

/** Alerts one subscriber may have waiting before it is ended (the client resumes with `since`). */
export const MAX_QUEUED_PER_SUBSCRIBER = 2_000;

export type FanoutOptions = {
  stream: string;
  seal?: HistorySeal;
  onQuarantined?: (record: { seq: number; subject: string; reason: string }) => void;
  /**
   * Told of every record read, matched or not, in order (the runtime inspects them all); `decode`
   * checks and parses it, once however many ask.
   */
  onRecord?: (seq: number, subject: string, decode: () => Alert | string) => void;
};

type Subscriber = {
  filter: AlertFilter;
  /** The filter as text, type included: subscribers with equal filters share one verdict per record. */
  filterKey: string;
  deliver: (alert: FeedAlert) => void | Promise<void>;
  end: (reason: string) => void;
  /** Alerts matched and not yet delivered, in stream order. */
  queue: FeedAlert[];
  lastDelivered: number;
  /** Until its catch-up is done, the shared read delivers nothing to it, only notes `seenWhileCatchingUp`. */
  live: boolean;
  /** The newest matching sequence the shared read passed while this subscriber caught up. */
  seenWhileCatchingUp: number;
  draining: boolean;
  closed: boolean;
};

export class AlertFanout {
  readonly #subscribers = new Set<Subscriber>();
  #position: number;
  #stopped = false;
  #close: () => Promise<void> = async () => undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: FanoutOptions,
    startAfter: number,
  ) {
    this.#position = startAfter;
  }

  /** Starts the shared read right after the stream's current end. */
  static async start(nc: NatsConnection, options: FanoutOptions): Promise<AlertFanout> {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(options.stream)).state.last_seq;
    const fanout = new AlertFanout(nc, options, last);
    await fanout.#read();
    return fanout;
  }

  /** The last stream sequence the shared read has dispatched. */
  get position(): number {
    return this.#position;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /**
   * Delivers every alert the filter matches after `after` (default: from now), in order.
   * `onEnd` is told why when the subscription ends without being stopped. Resolves at once; a
   * subscription from the past catches up in the background before it goes live.
   */
  async subscribe(
    filter: AlertFilter,
    after: number | undefined,
    deliver: (alert: FeedAlert) => void | Promise<void>,
    onEnd: (reason: string) => void,
  ): Promise<AlertFeed> {
    const position = this.#position;
    const from = after ?? position;
    const subscriber: Subscriber = {
      filter,
      filterKey: `${filter.filterType}:${filter.filter}`,
      deliver,
      end: onEnd,
      queue: [],
      lastDelivered: from,
      live: from >= position,
      seenWhileCatchingUp: 0,
      draining: false,
      closed: false,
    };
    this.#subscribers.add(subscriber);
    // The catch-up runs after the subscription is answered: a client that asks for 100,000 alerts
    // must have its subscription id before the first of them arrives, not after the last.
    if (!subscriber.live) {
      void this.#catchUp(subscriber, from).catch((error: unknown) =>
        this.#end(subscriber, `catching up failed (${String(error)}); resubscribe with since=${subscriber.lastDelivered}`),
      );
    }
    return {
      startedAfter: from,
      stop: async () => {
        subscriber.closed = true;
        this.#remove(subscriber);
      },
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const subscriber of [...this.#subscribers]) this.#end(subscriber, 'the agent is stopping');
    await this.#close();
  }

  async #read(): Promise<void> {
    // One consumer per agent can afford short pulls: after a server restart it notices the lost
    // consumer within seconds (two missed heartbeats) instead of half a minute.
    const messages = await ResumingConsume.start(orderedFrom(jetstream(this.nc), this.options.stream, 'vdsm.>', this.#position + 1), {
      max_messages: 1_000,
      expires: 5_000,
    });
    const pump = (async () => {
      for await (const message of messages) this.#dispatch(message);
    })().catch((error: unknown) => {
      if (this.#stopped) return;
      logger.error('the shared read of the alert stream stopped; ending every subscription', { error: String(error) });
      for (const subscriber of [...this.#subscribers]) this.#end(subscriber, `the agent's read of the stream failed (${String(error)})`);
    });
    this.#close = async () => {
      await messages.close();
      await pump;
    };
  }

  #dispatch(message: JsMsg): void {
    this.#position = message.seq;
    let decoded: Alert | string | undefined;
    const decode = () => (decoded ??= this.#decode(message));
    this.options.onRecord?.(message.seq, message.subject, decode);
    // One delivered object for every subscriber: it is what lets the API serialise it once for all.
    let delivered: FeedAlert | string | undefined;
    // Many subscribers often share a filter (every open dashboard): each distinct one is matched
    // once per record.
    const verdicts = this.#subscribers.size > 1 ? new Map<string, boolean>() : undefined;
    for (const subscriber of this.#subscribers) {
      let matches = verdicts?.get(subscriber.filterKey);
      if (matches === undefined) {
        matches = subscriber.filter.matches(message.subject);
        verdicts?.set(subscriber.filterKey, matches);
      }
      if (!matches) continue;
      if (delivered === undefined) {
        const alert = decode();
        delivered = typeof alert === 'string' ? alert : { seq: message.seq, alert };
      }
      if (typeof delivered === 'string') return;
      this.#enqueue(subscriber, delivered);
    }
  }

  #decode(message: JsMsg): Alert | string {
    const decoded = judgeAlertRecord(message, this.options.seal);
    if (typeof decoded === 'string') this.options.onQuarantined?.({ seq: message.seq, subject: message.subject, reason: decoded });
    return decoded;
  }

  #enqueue(subscriber: Subscriber, alert: FeedAlert): void {
    if (subscriber.closed || alert.seq <= subscriber.lastDelivered) return;
    if (!subscriber.live) {
      // Its own consumer will deliver this one too; the hand-over must wait until it has.
      subscriber.seenWhileCatchingUp = Math.max(subscriber.seenWhileCatchingUp, alert.seq);
      return;
    }
    subscriber.queue.push(alert);
    if (subscriber.queue.length > MAX_QUEUED_PER_SUBSCRIBER) {
      this.#end(subscriber, `the subscriber fell ${MAX_QUEUED_PER_SUBSCRIBER} alerts behind; resubscribe with since=${subscriber.lastDelivered}`);
      return;
    }
    if (subscriber.live) this.#drain(subscriber);
  }

  /**
   * Delivers one at a time: a slow connection's backpressure holds only its own queue. A delivery
   * that returns no promise (the connection is not behind) is done: the next follows at once,
   * without the promises an await per alert per subscriber cost at 100 subscribers.
   */
  #drain(subscriber: Subscriber): void {
    if (subscriber.draining) return;
    subscriber.draining = true;
    try {
      while (!subscriber.closed && subscriber.queue.length > 0) {
        const next = subscriber.queue.shift() as FeedAlert;
        if (next.seq <= subscriber.lastDelivered) continue;
        const pending = subscriber.deliver(next);
        if (pending) {
          pending.then(
            () => {
              subscriber.lastDelivered = next.seq;
              subscriber.draining = false;
              if (!subscriber.closed && subscriber.queue.length > 0) this.#drain(subscriber);
            },
            (error: unknown) => {
              subscriber.draining = false;
              this.#end(subscriber, `delivery failed (${String(error)})`);
            },
          );
          return;
        }
        subscriber.lastDelivered = next.seq;
      }
    } catch (error) {
      this.#end(subscriber, `delivery failed (${String(error)})`);
    }
    subscriber.draining = false;
  }

  /**
   * Everything the filter matches after `from`, through a consumer of the subscriber's own, until
   * it has delivered every matching record the shared read has passed; then the subscriber goes
   * live. Its pending count says when nothing more is there to read, so an empty range ends at once.
   */
  async #catchUp(subscriber: Subscriber, from: number): Promise<void> {
    /** Joins the shared read if nothing it passed is still undelivered; synchronous, so no record slips between. */
    const handOver = (): boolean => {
      if (subscriber.seenWhileCatchingUp > subscriber.lastDelivered) return false;
      subscriber.live = true;
      return true;
    };
    // Ordered, like every other read: a consumer lost or out of reach is replaced by one that
    // starts after the last record delivered, so nothing is skipped.
    const open = orderedFrom(jetstream(this.nc), this.options.stream, consumerFilter(subscriber.filter.subjects), from + 1);
    const consumer = await open(undefined);
    let messages: ResumingConsume | undefined;
    try {
      if ((await consumer.info()).num_pending === 0 && handOver()) return;
      messages = await ResumingConsume.start(open, { max_messages: 1_000 }, { first: consumer });
      try {
        for await (const message of messages) {
          if (subscriber.closed) return;
          if (message.seq > subscriber.lastDelivered && subscriber.filter.matches(message.subject)) {
            const decoded = this.#decode(message);
            if (typeof decoded !== 'string') await subscriber.deliver({ seq: message.seq, alert: decoded });
            subscriber.lastDelivered = message.seq;
          }
          // Caught up with the stream as it is now, or with all the shared read has passed.
          if ((message.info.pending === 0 || message.seq >= this.#position) && handOver()) return;
        }
      } finally {
        await messages.close();
      }
    } finally {
      // Once consuming, the read deletes its consumers itself.
      if (!messages) consumer.delete().catch(() => undefined);
      if (subscriber.live && !subscriber.closed) this.#drain(subscriber);
    }
  }

  #end(subscriber: Subscriber, reason: string): void {
    if (subscriber.closed) return;
    subscriber.closed = true;
    this.#remove(subscriber);
    subscriber.end(reason);
  }

  #remove(subscriber: Subscriber): void {
    this.#subscribers.delete(subscriber);
    subscriber.queue.length = 0;
  }
}
