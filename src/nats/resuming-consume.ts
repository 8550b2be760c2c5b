// A consume() that goes on after the last message it delivered when nats.js 3.4 would stall.
//
// In a cluster a new consumer lives on one server and its pull subject's interest reaches the
// others a moment later; a pull that gets there first is answered 503 "no responders", and nats.js
// only notes it and waits for two missed idle heartbeats (30 s at its defaults; nats.go fixed the
// same in nats-io/nats.go#1827, nats.js#221 is open). Here about one read in 300 through a server
// that is not the stream leader hit it: an API call that reads history took 30 s. And when the
// server holding an ordered consumer dies, nats.js asks that consumer's info forever and never
// makes a new one: a live tail goes silent. Either way the cure is a new consumer that starts after
// the last message delivered, which each message's sequence makes exact.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumeOptions,
  type Consumer,
  type ConsumerMessages,
  type ConsumerNotification,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';

/**
 * Opens the consumer to read from: `after` is the stream sequence of the last message delivered
 * (undefined before the first), so an ordered consumer can start right after it.
 */
export type OpenConsumer = (after: number | undefined) => Promise<Consumer>;

export type ResumeOptions = {
  /** A consumer the caller opened already (to ask how much it holds, say): the first consume uses it. */
  first?: Consumer;
  /**
   * The consumer is a durable the server keeps, with its place: `open` returns it as it is, only a
   * lost pull is taken up again (a lost durable is the operator's business), and it is never deleted here.
   */
  durable?: boolean;
};

/** An ordered consumer of `filter` from stream sequence `firstSeq`, opened again after the last message seen. */
export function orderedFrom(js: JetStreamClient, stream: string, filter: string | string[], firstSeq: number): OpenConsumer {
  return (after) =>
    js.consumers.get(stream, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: after === undefined ? firstSeq : after + 1,
    });
}

const FIRST_RETRY_MS = 20;
const LAST_RETRY_MS = 1_000;
/** How long opening a new consumer may keep failing (an election, a node coming back) before the read fails. */
const REOPEN_DEADLINE_MS = 60_000;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/** Statuses after which only a new consumer delivers again: its pull went nowhere, or the consumer is gone. */
function lost(status: ConsumerNotification, durable: boolean): boolean {
  if (status.type === 'no_responders') return true;
  return !durable && (status.type === 'heartbeats_missed' || status.type === 'consumer_not_found' || status.type === 'consumer_deleted');
}

/** Errors no new attempt can change. */
function terminal(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound;
}

/**
 * Iterated once. Each message passes through one promise reaction here, not an async generator:
 * the read recovery measures itself against goes through it a million times.
 */
export class ResumingConsume implements AsyncIterable<JsMsg>, AsyncIterator<JsMsg, undefined> {
  #consumer: Consumer;
  #messages: ConsumerMessages;
  #iterator: AsyncIterator<JsMsg>;
  #lost = false;
  #closed = false;
  /** The stream sequence of the last message delivered: where a consumer opened again starts after. */
  #after: number | undefined;
  #released: Consumer | undefined;
  /** Resumes since the last message delivered: a consumer that keeps losing its pulls is asked less and less often. */
  #fruitless = 0;
  /** How many times the read was taken up again on a new consumer (what its tests check). */
  resumed = 0;

  private constructor(
    private readonly open: OpenConsumer,
    private readonly options: ConsumeOptions,
    private readonly durable: boolean,
    consumer: Consumer,
    messages: ConsumerMessages,
  ) {
    this.#consumer = consumer;
    this.#messages = messages;
    this.#iterator = this.#follow(messages);
  }

  /** Starts consuming now, so that a stream that is not there fails the caller, not the read. */
  static async start(open: OpenConsumer, options: ConsumeOptions, resume: ResumeOptions = {}): Promise<ResumingConsume> {
    const consumer = resume.first ?? (await open(undefined));
    return new ResumingConsume(open, options, resume.durable === true, consumer, await consumer.consume(options));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<JsMsg, undefined>> {
    return this.#iterator.next().then((result) => {
      if (result.done) return this.#resume();
      this.#after = result.value.seq;
      this.#fruitless = 0;
      return result;
    });
  }

  /** A `break` out of the caller's loop ends the read. */
  async return(): Promise<IteratorReturnResult<undefined>> {
    this.#closed = true;
    // Ending nats.js's own iterator first is what stops its consumer: its close() waits for a
    // turn of an iteration that nobody would take any more.
    await this.#iterator.return?.();
    await this.#messages.close();
    this.#release(this.#consumer);
    return DONE;
  }

  /** Ends the iteration, also while it waits for a message. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#messages.close();
  }

  /** The messages' iterator, and a watch that closes them once only a new consumer could deliver. */
  #follow(messages: ConsumerMessages): AsyncIterator<JsMsg> {
    this.#lost = false;
    void (async () => {
      for await (const status of messages.status()) {
        if (!lost(status, this.durable)) continue;
        this.#lost = true;
        // Not awaited: the messages end when the reader takes its next turn.
        void messages.close();
        return;
      }
    })();
    return messages[Symbol.asyncIterator]();
  }

  /** The messages ended: closed by the caller, or by the watch, and then a new consumer goes on. */
  async #resume(): Promise<IteratorResult<JsMsg, undefined>> {
    this.#release(this.#consumer);
    if (!this.#lost || this.#closed) return DONE;
    this.resumed += 1;
    const opened = await this.#reopen();
    if (!opened) return DONE;
    [this.#consumer, this.#messages] = opened;
    this.#iterator = this.#follow(this.#messages);
    // Closed while opening: the stop that close() queues runs on the iterator's next turn.
    if (this.#closed) void this.#messages.close();
    return this.next();
  }

  /** A new consumer after the last message delivered, tried again with a backoff; undefined once closed. */
  async #reopen(): Promise<[Consumer, ConsumerMessages] | undefined> {
    const deadline = Date.now() + REOPEN_DEADLINE_MS;
    for (let attempt = this.#fruitless++; ; attempt += 1) {
      await sleep(Math.min(LAST_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt));
      if (this.#closed) return undefined;
      try {
        const consumer = await this.open(this.#after);
        return [consumer, await consumer.consume(this.options)];
      } catch (error) {
        if (terminal(error) || Date.now() > deadline) throw error;
      }
    }
  }

  /** A consumer made for this read is deleted when done with, not left to the server's 5 minutes of inactivity. */
  #release(consumer: Consumer): void {
    if (this.durable || this.#released === consumer) return;
    this.#released = consumer;
    consumer.delete().catch(() => undefined);
  }
}
