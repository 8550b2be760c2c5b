// A manager that lives on the bus and follows alerts through a durable JetStream consumer: its
// position survives its own restart, the server's restart and any outage. Several processes may
// share one durable name — a group: the server hands the group one alert at a time (max ack
// pending 1) and the next only once a member has handled and acknowledged it, so the group sees
// every alert in stream order, and when a member dies holding one, another gets it after ackWait.
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerConfig } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { Alert } from '../domain/alert.ts';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import { compileFilter, type FilterType } from '../filters/alert-filter.ts';
import { createLogger } from '../log.ts';
import { DEFAULT_STREAM } from '../nats/alert-stream.ts';
import { INBOX_PREFIXES } from '../domain/api-subjects.ts';
import { connectNats, type NatsAccess } from '../nats/connection.ts';
import { consumerFilter } from '../subscriptions/alert-feed.ts';

const logger = createLogger('manager');

export type ManagedAlert = Alert & { seq: number };

export type ManagerOptions = {
  /** A NATS URL (the manager gets its own connection) or a connection to share. */
  nats: string | NatsConnection;
  /** With a URL: the manager's identity (data/credentials/manager.nk) and the server's CA. */
  access?: NatsAccess;
  /** The group's identity: every process with this name shares one position in the stream. */
  durableName: string;
  filter: string;
  filterType?: FilterType;
  stream?: string;
  /** Where a new group starts: `all` catches up from history (default), `new` only from now. */
  startAt?: 'all' | 'new';
  /** How long a member may hold an alert before the group gives it to another member. */
  ackWaitMs?: number;
  /**
   * Handles one alert; the next comes only after it resolves. If it throws, the alert is given
   * to the group again after a second.
   */
  onAlert(alert: ManagedAlert): Promise<void> | void;
};

export type Manager = {
  /** The stream sequence of the last alert this member handled. */
  readonly lastHandled: number;
  /** Stops taking alerts; the group's position stays in the durable consumer. */
  stop(): Promise<void>;
};

const DurableName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/, { error: 'may hold only letters, digits, "_" and "-"' });

export async function startManager(options: ManagerOptions): Promise<Manager> {
  const name = DurableName.safeParse(options.durableName);
  if (!name.success) {
    throw new OpstreamError(ErrorCodes.InvalidParams, `durableName ${JSON.stringify(options.durableName)} ${name.error.issues[0]?.message}`);
  }
  const filter = compileFilter(options.filter, options.filterType ?? 'glob');
  const ownsConnection = typeof options.nats === 'string';
  const nc = typeof options.nats === 'string' ? await connectNats(options.nats, `opstream-manager-${name.data}`, { inboxPrefix: INBOX_PREFIXES.manager, ...options.access }) : options.nats;
  const stream = options.stream ?? DEFAULT_STREAM;
  const subjects = consumerFilter(filter.subjects);
  await ensureDurable(nc, stream, {
    durable_name: name.data,
    ...(typeof subjects === 'string' ? { filter_subject: subjects } : { filter_subjects: subjects }),
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 1,
    ack_wait: (options.ackWaitMs ?? 5_000) * 1_000_000,
    deliver_policy: options.startAt === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
  });

  const consumer = await jetstream(nc).consumers.get(stream, name.data);
  // The server holds back all but one unacknowledged alert anyway; a larger pull keeps a request
  // open so the next one arrives as soon as the last is acknowledged, without a new pull.
  const messages = await consumer.consume({ max_messages: 100 });
  let lastHandled = 0;
  const loop = (async () => {
    for await (const message of messages) {
      // A redelivery of what this member already handled (its ack was lost): not again.
      if (message.seq <= lastHandled || !filter.matches(message.subject)) {
        await message.ackAck().catch(() => undefined);
        continue;
      }
      try {
        await options.onAlert({ ...Alert.parse(message.json()), seq: message.seq });
      } catch (error) {
        logger.warn('alert handler failed; the group gets it again', { seq: message.seq, error: String(error) });
        message.nak(1_000);
        continue;
      }
      if (await message.ackAck().catch(() => false)) lastHandled = message.seq;
    }
  })().catch((error: unknown) => logger.warn('manager stopped taking alerts', { error: String(error) }));

  return {
    get lastHandled() {
      return lastHandled;
    },
    async stop() {
      await messages.close();
      await loop;
      if (ownsConnection) await nc.drain();
    },
  };
}

/** Creates the group's durable consumer, or brings an existing one to this filter. */
async function ensureDurable(nc: NatsConnection, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const existing = await jsm.consumers.info(stream, config.durable_name).catch(() => undefined);
  if (!existing) {
    await jsm.consumers.add(stream, config);
    return;
  }
  const subjectsOf = (c: Partial<ConsumerConfig>) => [...(c.filter_subjects ?? (c.filter_subject ? [c.filter_subject] : []))].sort();
  if (JSON.stringify(subjectsOf(existing.config)) !== JSON.stringify(subjectsOf(config))) {
    const filter = config.filter_subject ? { filter_subject: config.filter_subject, filter_subjects: [] } : { filter_subject: '', filter_subjects: config.filter_subjects };
    await jsm.consumers.update(stream, config.durable_name, filter);
  }
}
