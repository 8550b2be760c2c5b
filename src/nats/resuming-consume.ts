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

export class ResumingConsume implements AsyncIterable<JsMsg> {
  #current: ConsumerMessages;
  #closed = false;
  /** How many times a pull went unanswered and the consumer was opened again (for tests and logs). */
  resumed = 0;

  private constructor(
    private readonly open: OpenConsumer,
    private readonly options: ConsumeOptions,
    first: ConsumerMessages,
  ) {
    this.#current = first;
  }

  /**
   * Starts consuming now, so that a stream that is not there fails the caller, not the read.
   * `first` is a consumer the caller opened already (to ask how much it holds, say).
   */
  static async start(open: OpenConsumer, options: ConsumeOptions, first?: Consumer): Promise<ResumingConsume> {
    return new ResumingConsume(open, options, await (first ?? (await open(undefined))).consume(options));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<JsMsg> {
    let after: number | undefined;
    let failures = 0;
    let messages = this.#current;
    for (;;) {
      let pullLost = false;
      void this.#watch(messages, () => {
        pullLost = true;
        void messages.close();
      });
      try {
        for await (const message of messages) {
          after = message.seq;
          failures = 0;
          yield message;
        }
      } finally {
        await messages.close();
      }
      if (!pullLost || this.#closed) return;
      this.resumed += 1;
      await sleep(Math.min(LAST_RETRY_MS, FIRST_RETRY_MS * 2 ** failures));
      failures += 1;
      if (this.#closed) return;
      messages = await (await this.open(after)).consume(this.options);
      this.#current = messages;
      if (this.#closed) {
        await messages.close();
        return;
      }
    }
  }

  /** Ends the iteration, also while it waits for a message. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#current.close();
  }

  async #watch(messages: ConsumerMessages, onPullLost: () => void): Promise<void> {
    for await (const status of messages.status()) {
      if (status.type === 'no_responders') {
        onPullLost();
        return;
      }
    }
  }
}
