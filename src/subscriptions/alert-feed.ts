// A live, ordered stream of the alerts a filter selects, read from JetStream: whatever a feed
// delivers is already durable, and it starts at a known position so nothing between "subscribed"
// and "live" is missed.
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Alert } from '../domain/alert.ts';
import type { AlertFilter } from '../filters/alert-filter.ts';
import { createLogger } from '../log.ts';

const logger = createLogger('feed');

export type FeedAlert = { seq: number; alert: Alert };

export type AlertFeed = {
  /** The stream sequence the feed started after: alerts with a greater one are delivered. */
  readonly startedAfter: number;
  stop(): Promise<void>;
};

export type FeedOptions = {
  stream: string;
  filter: AlertFilter;
  /** Deliver alerts after this sequence; default: only those appended from now on. */
  after?: number;
};

export async function openAlertFeed(
  nc: NatsConnection,
  options: FeedOptions,
  onAlert: (alert: FeedAlert) => void,
): Promise<AlertFeed> {
  const after = options.after ?? (await lastStreamSequence(nc, options.stream));
  const consumer = await jetstream(nc).consumers.get(options.stream, {
    filter_subjects: options.filter.subjects,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: after + 1,
  });
  const messages: ConsumerMessages = await consumer.consume({
    callback: (message) => {
      if (!options.filter.matches(message.subject)) return;
      const parsed = Alert.safeParse(message.json());
      if (!parsed.success) {
        logger.warn('skipping a malformed message in the alert stream', { seq: message.seq, subject: message.subject });
        return;
      }
      onAlert({ seq: message.seq, alert: parsed.data });
    },
  });
  return {
    startedAfter: after,
    async stop() {
      await messages.close();
    },
  };
}

export async function lastStreamSequence(nc: NatsConnection, stream: string): Promise<number> {
  const info = await (await jetstreamManager(nc)).streams.info(stream);
  return info.state.last_seq;
}
