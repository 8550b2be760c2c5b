// A manager that lives on the bus and follows alerts through a durable JetStream consumer: its
// position survives its own restart, the server's restart and any outage. Several processes may
// share one durable name — a group: the server hands the group one alert at a time (max ack
// pending 1) and the next only once a member has handled and acknowledged it, so the group sees
// every alert in stream order, and when a member dies holding one, another gets it after ackWait.
// An alert the group cannot handle — malformed, or its handler failed `maxDeliver` times — is set
// aside as a dead letter (dead-letters.ts) and terminated, so one bad message never stalls the group.
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  type ConsumerConfig,
  type JsMsg,
} from '@nats-io/jetstream';
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
import { ResumingConsume } from '../nats/resuming-consume.ts';
import { DeadLetters, type DeadLetter, type DeadLetterOptions } from './dead-letters.ts';

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
   * to the group again after a second, up to `maxDeliver` times in all.
   */
  onAlert(alert: ManagedAlert): Promise<void> | void;
  /** Deliveries of one alert before the group sets it aside as a dead letter (default 5). */
  maxDeliver?: number;
  /** Told of each dead letter once it is recorded (in the `opstream_dead_letters` KV bucket). */
  onDeadLetter?(letter: DeadLetter): Promise<void> | void;
  deadLetters?: DeadLetterOptions;
};

export type Manager = {
  /** The stream sequence of the last alert this member handled. */
  readonly lastHandled: number;
  /** Alerts this member set aside as dead letters. */
  readonly deadLettered: number;
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
  const maxDeliver = options.maxDeliver ?? 5;
  if (!Number.isInteger(maxDeliver) || maxDeliver < 1 || maxDeliver > 1_000) {
    throw new OpstreamError(ErrorCodes.InvalidParams, `maxDeliver must be a whole number from 1 to 1000 (got ${maxDeliver})`);
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
    max_deliver: maxDeliver,
    ack_wait: (options.ackWaitMs ?? 5_000) * 1_000_000,
    deliver_policy: options.startAt === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
  });

  const consumer = await jetstream(nc).consumers.get(stream, name.data);
  // The server holds back all but one unacknowledged alert anyway; a larger pull keeps a request
  // open so the next one arrives as soon as the last is acknowledged, without a new pull.
  const messages = await ResumingConsume.start(() => Promise.resolve(consumer), { max_messages: 100 }, { durable: true });
  let lastHandled = 0;
  let deadLettered = 0;
  let deadLetters: Promise<DeadLetters> | undefined;
  /** Records the letter, then terminates the message; unrecorded, it goes back to the group. */
  const setAside = async (message: JsMsg, reason: string): Promise<void> => {
    const letter: DeadLetter = {
      durableName: name.data,
      stream,
      seq: message.seq,
      subject: message.subject,
      deliveries: message.info.deliveryCount,
      reason,
      time: new Date().toISOString(),
    };
    try {
      deadLetters ??= DeadLetters.open(nc, options.deadLetters);
      await (await deadLetters).record(letter);
    } catch (error) {
      deadLetters = undefined;
      logger.error('cannot record a dead letter; the group gets the alert again', { seq: message.seq, error: String(error) });
      message.nak(1_000);
      return;
    }
    logger.warn('alert set aside as a dead letter', { seq: message.seq, reason });
    message.term(reason);
    deadLettered += 1;
    await Promise.resolve(options.onDeadLetter?.(letter)).catch((error: unknown) =>
      logger.warn('onDeadLetter failed', { seq: message.seq, error: String(error) }),
    );
  };
  const loop = (async () => {
    for await (const message of messages) {
      // A redelivery of what this member already handled (its ack was lost): not again.
      if (message.seq <= lastHandled || !filter.matches(message.subject)) {
        await message.ackAck().catch(() => undefined);
        continue;
      }
      const alert = readAlert(message);
      if (!alert.ok) {
        // No redelivery can mend it.
        await setAside(message, alert.reason);
        continue;
      }
      try {
        await options.onAlert({ ...alert.alert, seq: message.seq });
      } catch (error) {
        if (message.info.deliveryCount >= maxDeliver) {
          await setAside(message, `onAlert failed ${message.info.deliveryCount} times, last: ${String(error)}`);
        } else {
          logger.warn('alert handler failed; the group gets it again', { seq: message.seq, error: String(error) });
          message.nak(1_000);
        }
        continue;
      }
      if (await message.ackAck().catch(() => false)) lastHandled = message.seq;
    }
  })().catch((error: unknown) => logger.warn('manager stopped taking alerts', { error: String(error) }));

  return {
    get lastHandled() {
      return lastHandled;
    },
    get deadLettered() {
      return deadLettered;
    },
    async stop() {
      await messages.close();
      await loop;
      if (ownsConnection) await nc.drain();
    },
  };
}

function readAlert(message: JsMsg): { ok: true; alert: Alert } | { ok: false; reason: string } {
  let body: unknown;
  try {
    body = message.json();
  } catch {
    return { ok: false, reason: 'malformed alert: the body is not JSON' };
  }
  const parsed = Alert.safeParse(body);
  if (parsed.success) return { ok: true, alert: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, reason: `malformed alert: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}` };
}

/** Creates the group's durable consumer, or brings an existing one to this filter and maxDeliver. */
async function ensureDurable(nc: NatsConnection, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  const jsm = await jetstreamManager(nc);
  // Only "no such consumer" means create it; anything else (no stream, no permission, a timeout) is the caller's to see.
  const existing = await jsm.consumers.info(stream, config.durable_name).catch((error: unknown) => {
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound) return undefined;
    throw new Error(`cannot read consumer ${config.durable_name} of stream ${stream}: ${(error as Error).message}`, { cause: error });
  });
  if (!existing) {
    await jsm.consumers.add(stream, config);
    return;
  }
  if (existing.config.max_deliver !== config.max_deliver) {
    await jsm.consumers.update(stream, config.durable_name, { max_deliver: config.max_deliver });
  }
  const subjectsOf = (c: Partial<ConsumerConfig>) => [...(c.filter_subjects ?? (c.filter_subject ? [c.filter_subject] : []))].sort();
  if (JSON.stringify(subjectsOf(existing.config)) !== JSON.stringify(subjectsOf(config))) {
    const filter = config.filter_subject ? { filter_subject: config.filter_subject, filter_subjects: [] } : { filter_subject: '', filter_subjects: config.filter_subjects };
    await jsm.consumers.update(stream, config.durable_name, filter);
  }
}
