// A consume() that resumes at once when the server answers a pull with "no responders", instead
// of waiting for two missed idle heartbeats (30 s at nats.js's defaults).
//
// In a cluster a new consumer lives on one server and its pull subject's interest reaches the
// others a moment later; a pull that gets there first is answered 503. nats.js 3.4 only notes it
// and waits for the heartbeats (nats.go fixed the same in nats-io/nats.go#1827; nats.js#221 is
// open). Here about one read in 300 through a server that is not the stream leader hit it: an API
// call that reads history then took 30 s. The cure is to open the consumer again and go on after
// the last message seen, which is safe for every caller since each message carries its sequence.
import { setTimeout as sleep } from 'node:timers/promises';
import { DeliverPolicy, type ConsumeOptions, type Consumer, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';

/**
 * Opens the consumer to read from: `after` is the stream sequence of the last message delivered
 * (undefined before the first), so an ordered consumer can start right after it. A durable one
 * ignores it: the server knows what it acknowledged.
 */
export type OpenConsumer = (after: number | undefined) => Promise<Consumer>;

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

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * Iterated once. Each message passes through one promise reaction here, not an async generator:
 * the read recovery measures itself against goes through it a million times.
 */
export class ResumingConsume implements AsyncIterable<JsMsg>, AsyncIterator<JsMsg, undefined> {
  #messages: ConsumerMessages;
  #iterator: AsyncIterator<JsMsg>;
  #pullLost = false;
  #closed = false;
  /** The stream sequence of the last message delivered: where a consumer opened again starts after. */
  #after: number | undefined;
  #failures = 0;
  /** How many times a pull went unanswered and the consumer was opened again (for tests and logs). */
  resumed = 0;

  private constructor(
    private readonly open: OpenConsumer,
    private readonly options: ConsumeOptions,
    first: ConsumerMessages,
  ) {
    this.#messages = first;
    this.#iterator = this.#follow(first);
  }

  /**
   * Starts consuming now, so that a stream that is not there fails the caller, not the read.
   * `first` is a consumer the caller opened already (to ask how much it holds, say).
   */
  static async start(open: OpenConsumer, options: ConsumeOptions, first?: Consumer): Promise<ResumingConsume> {
    return new ResumingConsume(open, options, await (first ?? (await open(undefined))).consume(options));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<JsMsg, undefined>> {
    return this.#iterator.next().then((result) => {
      if (result.done) return this.#resume();
      this.#after = result.value.seq;
      this.#failures = 0;
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
    return DONE;
  }

  /** Ends the iteration, also while it waits for a message. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#messages.close();
  }

  /** The messages' iterator, and a watch that closes them when a pull finds no responder. */
  #follow(messages: ConsumerMessages): AsyncIterator<JsMsg> {
    this.#pullLost = false;
    void (async () => {
      for await (const status of messages.status()) {
        if (status.type !== 'no_responders') continue;
        this.#pullLost = true;
        await messages.close();
        return;
      }
    })();
    return messages[Symbol.asyncIterator]();
  }

  /** The messages ended: closed by the caller, or by the watch, and then they go on from a new consumer. */
  async #resume(): Promise<IteratorResult<JsMsg, undefined>> {
    if (!this.#pullLost || this.#closed) return DONE;
    this.resumed += 1;
    await sleep(Math.min(LAST_RETRY_MS, FIRST_RETRY_MS * 2 ** this.#failures));
    this.#failures += 1;
    if (this.#closed) return DONE;
    const messages = await (await this.open(this.#after)).consume(this.options);
    this.#messages = messages;
    this.#iterator = this.#follow(messages);
    if (this.#closed) {
      await messages.close();
      return DONE;
    }
    return this.next();
  }
}
