// The entity's subject in the alert stream is its log: appends are guarded so that one writer
// per entity holds, and reads replay exactly what was acknowledged. Every record read is checked
// (sealed by an agent, JSON, an alert, stored under its own name) and one that is not comes back
// as quarantined rather than as an exception: no record can stop whoever reads the log.
import {
  JetStreamApiCodes,
  JetStreamApiError,
  PubHeaders,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type ApiError,
  type JetStreamManager,
  type JsMsg,
  type MsgRequest,
} from '@nats-io/jetstream';
import { MsgHdrsImpl, createInbox, errors, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Alert } from '../src/domain/alert.ts';
import { ErrorCodes, OpstreamError } from '../src/domain/errors.ts';
import { ALERT_ROOT } from '../src/domain/subjects.ts';
import { judgeAlertRecord, type StoredMessage } from '../src/nats/alert-record.ts';
import { orderedFrom, ResumingConsume } from '../src/nats/resuming-consume.ts';
import { SEAL_HEADER, type HistorySeal } from '../src/security/history-seal.ts';

export type StoredAlert = { seq: number; alert: Alert };

/** A record of the stream that cannot be history: why, and where it is. */
export type QuarantinedRecord = { seq: number; subject: string; reason: string };

export type HistoryRecord = StoredAlert | QuarantinedRecord;

export const isQuarantined = (record: HistoryRecord): record is QuarantinedRecord => 'reason' in record;

/** One stored message judged as history (with `seal`, its seal checked too): an alert, or a quarantined record saying why not. */
export function historyRecordOf(message: StoredMessage, seal: HistorySeal | undefined): HistoryRecord {
  const judged = judgeAlertRecord(message, seal);
  return typeof judged === 'string' ? { seq: message.seq, subject: message.subject, reason: judged } : { seq: message.seq, alert: judged };
}

/**
 * Messages asked for in one pull of `readAll`. Pulls of 10,000 left up to that many parsed
 * messages queued while recovery routed them; they outlived young-generation collections and were
 * copied and promoted (process CPU of a replay 24.5 µs a record, 23.1 with 2,500; the raw read got
 * no slower: 285k -> 300k/s).
 */
const READ_ALL_PULL = 2_500;

/** How long an append waits for JetStream's ack, as js.publish does by default. */
export const APPEND_ACK_TIMEOUT_MS = 5_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

// A header value ends at CR or LF: one inside would add a header of the caller's choosing.
const LINE_BREAK = /[\r\n]/;

/**
 * An append's headers, built from a record rather than by `append`: each append canonicalised its
 * key, listed and filtered the keys so far and trimmed its value: 7% of what the write benchmark
 * allocated, ~5% of its CPU. The keys are constants in canonical form; the values are checked here.
 */
function guardHeaders(msgId: string, expectedLastSeq: number, seal: string | undefined): MsgHdrs {
  // The agent's own ids never hold one (entity and job ids refuse control characters): a bug here, not a caller's error.
  if (LINE_BREAK.test(msgId)) throw new OpstreamError(ErrorCodes.InternalError, `a message id cannot hold a line break: ${JSON.stringify(msgId)}`);
  const record: Record<string, string[]> = {
    [PubHeaders.MsgIdHdr]: [msgId],
    [PubHeaders.ExpectedLastSubjectSequenceHdr]: [String(expectedLastSeq)],
  };
  // A seal is base64url: no line break to check for.
  if (seal !== undefined) record[SEAL_HEADER] = [seal];
  return MsgHdrsImpl.fromRecord(record);
}

/** An append queued for the next publish turn, then waiting for its ack. */
type PendingAppend = {
  subject: string;
  body: Uint8Array;
  headers: MsgHdrs;
  resolve: (seq: number) => void;
  reject: (error: Error) => void;
  /** When, on performance.now()'s clock, the append stops waiting for its ack (set as it is published). */
  deadline: number;
};

/**
 * A message of the alert stream before its body is decoded (`decode(message)` does): recovery
 * skips most bodies. No decode closure per message — a function made per record was a visible
 * share of reading a million.
 */
export type RawAlert = { seq: number; subject: string; message: StoredMessage };

export class AlertLog {
  /** Appends asked for in this turn of the event loop; published together at its end. */
  #queued: PendingAppend[] = [];
  /** Appends published and not yet acknowledged, by the token that ends their reply subject. */
  readonly #awaitingAck = new Map<string, PendingAppend>();
  /** Times out what waits longest; armed while anything waits. */
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #replies: { prefix: string; subscription: Subscription } | undefined;
  #nextToken = 0;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly stream: string,
    /** Without it (tests of the runtime alone, readers without the key) seals are neither written nor checked. */
    private readonly seal: HistorySeal | undefined,
    private readonly ackTimeoutMs: number,
  ) {}

  static async open(nc: NatsConnection, stream: string, seal?: HistorySeal, options: { ackTimeoutMs?: number } = {}): Promise<AlertLog> {
    const ackTimeoutMs = options.ackTimeoutMs ?? APPEND_ACK_TIMEOUT_MS;
    // A timer cannot wait longer than 2^31-1 ms: Node would fire it at once, and forever.
    if (!Number.isInteger(ackTimeoutMs) || ackTimeoutMs < 1 || ackTimeoutMs > MAX_TIMER_MS) {
      throw new RangeError(`ackTimeoutMs must be a whole number of milliseconds from 1 to ${MAX_TIMER_MS}, not ${ackTimeoutMs}`);
    }
    return new AlertLog(nc, jetstream(nc), await jetstreamManager(nc), stream, seal, ackTimeoutMs);
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
    // Encoded once: the seal and the publish take the same bytes (the client would encode a string again).
    const body = Buffer.from(JSON.stringify(alert));
    const guard = guardHeaders(msgId, expectedLastSeq, this.seal?.seal(alert.alertName, body));
    try {
      return await new Promise<number>((resolve, reject) => {
        if (this.#queued.length === 0) setImmediate(() => this.#publishQueued());
        this.#queued.push({ subject: alert.alertName, body, headers: guard, resolve, reject, deadline: 0 });
      });
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

  /**
   * Publishes every append queued in this turn at once, each with its own reply subject under one
   * inbox subscription. Entities append concurrently, each from its own timer or ack callback:
   * published one by one, every append became its own socket write (the write benchmark's largest
   * cost), and js.publish's request per append built an Error with a stack for every ack. Each
   * entity still has at most one append in flight, so its order and its guard are unchanged.
   */
  #publishQueued(): void {
    const batch = this.#queued;
    this.#queued = [];
    let replies: { prefix: string; subscription: Subscription };
    try {
      replies = this.#replies ??= this.#subscribeReplies();
    } catch (error) {
      for (const pending of batch) pending.reject(error as Error);
      return;
    }
    const deadline = performance.now() + this.ackTimeoutMs;
    for (const pending of batch) {
      const token = (this.#nextToken += 1).toString(36);
      try {
        this.nc.publish(pending.subject, pending.body, { reply: `${replies.prefix}${token}`, headers: pending.headers });
      } catch (error) {
        // Closed or draining: nothing was sent.
        pending.reject(error as Error);
        continue;
      }
      pending.deadline = deadline;
      this.#awaitingAck.set(token, pending);
    }
    if (this.#ackTimer === undefined && this.#awaitingAck.size > 0) this.#ackTimer = setTimeout(() => this.#timeOutAcks(), this.ackTimeoutMs).unref();
  }

  /**
   * What is still unanswered at its deadline is timed out, its outcome unknown, exactly as a
   * js.publish that timed out. One timer for every append: acks are awaited in publish order, so
   * the oldest is first. (A timer and a list of tokens per batch, kept 5 s each, made work for
   * every garbage collection of the write benchmark.)
   */
  #timeOutAcks(): void {
    this.#ackTimer = undefined;
    const now = performance.now();
    for (const [token, pending] of this.#awaitingAck) {
      if (pending.deadline > now) {
        this.#ackTimer = setTimeout(() => this.#timeOutAcks(), pending.deadline - now).unref();
        return;
      }
      this.#settle(token, new errors.TimeoutError());
    }
  }

  #subscribeReplies(): { prefix: string; subscription: Subscription } {
    // Replies come back under the connection's own inbox prefix: the only one its identity may read.
    const inboxPrefix = (this.nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    const prefix = `${createInbox(inboxPrefix)}.`;
    const subscription = this.nc.subscribe(`${prefix}*`, { callback: (error, message) => this.#onReply(prefix, error, message) });
    void this.nc.closed().then(() => {
      for (const token of [...this.#awaitingAck.keys()]) this.#settle(token, new errors.RequestError('connection closed'));
    });
    return { prefix, subscription };
  }

  #onReply(prefix: string, error: Error | null, message: Msg): void {
    if (error) {
      // The subscription is gone (a permissions violation): the next batch subscribes anew.
      this.#replies = undefined;
      for (const token of [...this.#awaitingAck.keys()]) this.#settle(token, error);
      return;
    }
    const token = message.subject.slice(prefix.length);
    const pending = this.#awaitingAck.get(token);
    if (!pending) return; // timed out already
    // No stream listens on the subject (or no JetStream): what js.publish calls "not enabled".
    if (message.data.length === 0 && message.headers?.code === 503) {
      this.#settle(token, new errors.NoRespondersError(pending.subject));
      return;
    }
    try {
      const text = message.string();
      const ack = JSON.parse(text) as { error?: ApiError; seq?: unknown };
      if (ack.error) this.#settle(token, new JetStreamApiError(ack.error));
      else if (typeof ack.seq !== 'number') this.#settle(token, new Error(`invalid ack from JetStream: ${text}`));
      else this.#settle(token, ack.seq);
    } catch (failure) {
      this.#settle(token, failure as Error);
    }
  }

  #settle(token: string, outcome: number | Error): void {
    const pending = this.#awaitingAck.get(token);
    if (!pending) return;
    this.#awaitingAck.delete(token);
    if (typeof outcome === 'number') pending.resolve(outcome);
    else pending.reject(outcome);
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
    return historyRecordOf(message, this.seal);
  }

  /**
   * Every record from `fromSeq` to the end of the stream, in stream order, in large batches:
   * the read recovery and the replay benchmark measure against. It ends when the consumer has
   * nothing pending, not at a sequence fixed in advance: that message may have been deleted.
   */
  async *readAll(fromSeq = 1): AsyncGenerator<RawAlert> {
    yield* this.#read(`${ALERT_ROOT}.>`, fromSeq, READ_ALL_PULL, (message) => ({ seq: message.seq, subject: message.subject, message }));
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
    for await (const message of await ResumingConsume.start(orderedFrom(this.js, this.stream, filter, fromSeq), { max_messages: batch })) {
      yield map(message);
      // Right after a change of stream leader a consumer can say "nothing pending" too early:
      // the leader confirms before the read ends (a recovery that stopped short would lose
      // entities).
      if (message.info.pending === 0 && !(await this.#nextExists(filter, message.seq + 1))) break;
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
