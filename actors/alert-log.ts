// The entity's subject in the alert stream is its log: appends are guarded so that one writer
// per entity holds, and reads replay exactly what was acknowledged. Every record read is checked
// (sealed by an agent, JSON, an alert, stored under its own name) and one that is not comes back
// as quarantined rather than as an exception: no record can stop whoever reads the log.
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type MsgRequest,
} from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { Alert } from '../src/domain/alert.ts';
import { ErrorCodes, OpstreamError } from '../src/domain/errors.ts';
import { ALERT_ROOT } from '../src/domain/subjects.ts';
import { judgeAlertRecord, type StoredMessage } from '../src/nats/alert-record.ts';
import { SEAL_HEADER, type HistorySeal } from '../src/security/history-seal.ts';

export type StoredAlert = { seq: number; alert: Alert };

/** A record of the stream that cannot be history: why, and where it is. */
export type QuarantinedRecord = { seq: number; subject: string; reason: string };

export type HistoryRecord = StoredAlert | QuarantinedRecord;

export const isQuarantined = (record: HistoryRecord): record is QuarantinedRecord => 'reason' in record;

/** A message of the alert stream before its body is decoded: recovery skips most bodies. */
export type RawAlert = { seq: number; subject: string; decode(): HistoryRecord };

export class AlertLog {
  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly stream: string,
    /** Without it (tests of the runtime alone, readers without the key) seals are neither written nor checked. */
    private readonly seal: HistorySeal | undefined,
  ) {}

  static async open(nc: NatsConnection, stream: string, seal?: HistorySeal): Promise<AlertLog> {
    return new AlertLog(jetstream(nc), await jetstreamManager(nc), stream, seal);
  }

  /** Whether records are checked for an agent's seal (false: only for being well-formed alerts). */
  get sealed(): boolean {
    return this.seal !== undefined;
  }

  /**
   * Appends one transition iff the subject's last message is still `expectedLastSeq` (0 = the
   * subject is empty). `msgId` makes a retried publish land once. Resolves with the stream
   * sequence once JetStream has acknowledged it; throws Conflict when another writer got there first.
   */
  async append(alert: Alert, expectedLastSeq: number, msgId: string): Promise<number> {
    const body = JSON.stringify(alert);
    const sealed = this.seal ? headers() : undefined;
    sealed?.set(SEAL_HEADER, this.seal?.seal(alert.alertName, body) ?? '');
    try {
      const ack = await this.js.publish(alert.alertName, body, {
        msgID: msgId,
        expect: { lastSubjectSequence: expectedLastSeq },
        headers: sealed,
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

  /** The stream sequence of the subject's last message, 0 when it has none. */
  async lastSequence(subject: string): Promise<number> {
    const message = await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject });
    return message?.seq ?? 0;
  }

  /** The stream's last sequence over all subjects (0 when empty). */
  async streamLastSequence(): Promise<number> {
    return (await this.jsm.streams.info(this.stream)).state.last_seq;
  }

  /** Judges one stored message: an alert, or a quarantined record saying why not. */
  decode(message: StoredMessage): HistoryRecord {
    const judged = judgeAlertRecord(message, this.seal);
    return typeof judged === 'string' ? { seq: message.seq, subject: message.subject, reason: judged } : { seq: message.seq, alert: judged };
  }

  /**
   * Every record from `fromSeq` to the end of the stream, in stream order, in large batches:
   * the read recovery and the replay benchmark measure against. It ends when the consumer has
   * nothing pending, not at a sequence fixed in advance: that message may have been deleted.
   */
  async *readAll(fromSeq = 1): AsyncGenerator<RawAlert> {
    yield* this.#read(`${ALERT_ROOT}.>`, fromSeq, 10_000, (message) => ({
      seq: message.seq,
      subject: message.subject,
      decode: () => this.decode(message),
    }));
  }

  /** The subject's records from `fromSeq` to its end, in order. */
  async *read(subject: string, fromSeq = 1): AsyncGenerator<HistoryRecord> {
    yield* this.#read(subject, fromSeq, 1_000, (message) => this.decode(message));
  }

  /** The subject's alerts, for readers that expect a clean history: a quarantined record throws. */
  async *alerts(subject: string, fromSeq = 1): AsyncGenerator<StoredAlert> {
    for await (const record of this.read(subject, fromSeq)) {
      if (isQuarantined(record)) throw new Error(`${subject} holds a record that is not history at sequence ${record.seq}: ${record.reason}`);
      yield record;
    }
  }

  async *#read<T>(filter: string, fromSeq: number, batch: number, map: (message: JsMsg) => T): AsyncGenerator<T> {
    // A consumer with nothing to deliver would wait forever; the stream's last sequence cannot
    // tell (that message may have been deleted), so ask for the first message that is there.
    if (!(await this.#nextExists(filter, fromSeq))) return;
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
    });
    const messages = await consumer.consume({ max_messages: batch });
    try {
      for await (const message of messages) {
        yield map(message);
        // Right after a change of stream leader a consumer can say "nothing pending" too early:
        // the leader confirms before the read ends (a recovery that stopped short would lose
        // entities).
        if (message.info.pending === 0 && !(await this.#nextExists(filter, message.seq + 1))) break;
      }
    } finally {
      await messages.close();
    }
  }

  /**
   * Whether the stream holds a record under `filter` at or after `seq`, as its leader says: a
   * direct get may be answered by a replica that is behind, or by nobody during an election.
   */
  async #nextExists(filter: string, seq: number): Promise<boolean> {
    // The server's STREAM.MSG.GET takes `next_by_subj` (as DIRECT.GET does); nats.js types it for direct gets only.
    const query = { seq, next_by_subj: filter } as unknown as MsgRequest;
    return (await this.jsm.streams.getMessage(this.stream, query)) !== null;
  }
}
