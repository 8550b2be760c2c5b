// The entity's subject in the alert stream is its log: appends are guarded so that one writer
// per entity holds, and reads replay exactly what was acknowledged.
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Alert } from '../src/domain/alert.ts';
import { ErrorCodes, OpstreamError } from '../src/domain/errors.ts';
import { ALERT_ROOT } from '../src/domain/subjects.ts';

export type StoredAlert = { seq: number; alert: Alert };

/** A message of the alert stream before its body is parsed: recovery skips most bodies. */
export type RawAlert = { seq: number; subject: string; parse(): Alert };

export class AlertLog {
  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly stream: string,
  ) {}

  static async open(nc: NatsConnection, stream: string): Promise<AlertLog> {
    return new AlertLog(jetstream(nc), await jetstreamManager(nc), stream);
  }

  /**
   * Appends one transition iff the subject's last message is still `expectedLastSeq` (0 = the
   * subject is empty). `msgId` makes a retried publish land once. Resolves with the stream
   * sequence once JetStream has acknowledged it; throws Conflict when another writer got there first.
   */
  async append(alert: Alert, expectedLastSeq: number, msgId: string): Promise<number> {
    try {
      const ack = await this.js.publish(alert.alertName, JSON.stringify(alert), {
        msgID: msgId,
        expect: { lastSubjectSequence: expectedLastSeq },
      });
      return ack.seq;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamWrongLastSequence) {
        throw new OpstreamError(
          ErrorCodes.Conflict,
          `${alert.alertName} changed under us (expected last sequence ${expectedLastSeq}): another writer won; reload and retry`,
          { alertName: alert.alertName, expectedLastSeq },
          { cause: error },
        );
      }
      throw error;
    }
  }

  /** The stream sequence of the subject's last alert, 0 when it has none. */
  async lastSequence(subject: string): Promise<number> {
    const message = await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject });
    return message?.seq ?? 0;
  }

  /** The stream's last sequence over all subjects (0 when empty). */
  async streamLastSequence(): Promise<number> {
    return (await this.jsm.streams.info(this.stream)).state.last_seq;
  }

  /**
   * Every alert from `fromSeq` up to what the stream holds when the read starts, in stream order,
   * in large batches: this is the read recovery and replay benchmarks measure against.
   */
  async *readAll(fromSeq = 1): AsyncGenerator<RawAlert> {
    const last = await this.streamLastSequence();
    if (last < fromSeq) return;
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: `${ALERT_ROOT}.>`,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
    });
    const messages = await consumer.consume({ max_messages: 10_000 });
    try {
      for await (const message of messages) {
        yield { seq: message.seq, subject: message.subject, parse: () => Alert.parse(message.json()) };
        if (message.seq >= last) break;
      }
    } finally {
      await messages.close();
    }
  }

  /** The subject's alerts from `fromSeq` up to what the stream holds now, in order. */
  async *read(subject: string, fromSeq = 1): AsyncGenerator<StoredAlert> {
    const last = await this.lastSequence(subject);
    if (last < fromSeq) return;
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
    });
    const messages = await consumer.consume();
    try {
      for await (const message of messages) {
        yield { seq: message.seq, alert: Alert.parse(message.json()) };
        if (message.seq >= last) break;
      }
    } finally {
      await messages.close();
    }
  }
}
