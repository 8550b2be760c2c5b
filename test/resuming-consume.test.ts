// A pull the server answers "no responders" (in a cluster: a new consumer whose interest has not
// reached the client's server yet) must not hold a read for the half minute nats.js waits for
// missed heartbeats: the read opens its consumer again and goes on after the last message seen.
// The test makes that answer certain by handing the first consume a consumer that was deleted.
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type Consumer, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../src/nats/connection.ts';
import { orderedFrom, ResumingConsume } from '../src/nats/resuming-consume.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

const STREAM = 'RESUME';

describe('a consume that resumes after a lost pull', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let js: JetStreamClient;

  beforeAll(async () => {
    server = await NatsTestServer.start();
    nc = await connectNats(server.url, 'resuming-consume-test');
    js = jetstream(nc);
    await (await jetstreamManager(nc)).streams.add({ name: STREAM, subjects: ['resume.>'] });
    for (let i = 1; i <= 5; i++) await js.publish('resume.a', `a${i}`);
    await js.publish('resume.b', 'b1');
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  /** A consumer whose pulls nobody answers: the server has no such consumer any more. */
  async function deletedConsumer(name: string): Promise<Consumer> {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(STREAM, { durable_name: name, ack_policy: AckPolicy.None, filter_subject: 'resume.a' });
    const consumer = await js.consumers.get(STREAM, name);
    await jsm.consumers.delete(STREAM, name);
    return consumer;
  }

  /** Polls a condition the test is waiting for (a resume, a read) for at most 10 s. */
  async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
    for (const deadline = Date.now() + 10_000; !(await condition()); ) {
      if (Date.now() > deadline) throw new Error(`not within 10 s: ${condition.toString()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async function readUntilEnd(messages: ResumingConsume): Promise<JsMsg[]> {
    const read: JsMsg[] = [];
    for await (const message of messages) {
      read.push(message);
      if (message.info.pending === 0) break;
    }
    return read;
  }

  it('opens its consumer again when a pull finds no responder, and reads every message once', async () => {
    const asked: Array<number | undefined> = [];
    const fromFirst = orderedFrom(js, STREAM, 'resume.a', 1);
    const messages = await ResumingConsume.start(
      (after) => {
        asked.push(after);
        return fromFirst(after);
      },
      { max_messages: 100 },
      { first: await deletedConsumer('gone-at-start') },
    );
    const read = await readUntilEnd(messages);
    expect(read.map((message) => message.string())).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    expect(messages.resumed).toBe(1);
    // Nothing had been read yet: it starts at the first sequence again.
    expect(asked).toEqual([undefined]);
  });

  it('goes on after the last message it delivered', async () => {
    const jsm = await jetstreamManager(nc);
    const asked: Array<number | undefined> = [];
    const open = async (after: number | undefined): Promise<Consumer> => {
      asked.push(after);
      const name = `mid-${asked.length}`;
      await jsm.consumers.add(STREAM, {
        durable_name: name,
        ack_policy: AckPolicy.None,
        filter_subject: 'resume.a',
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: (after ?? 0) + 1,
      });
      return js.consumers.get(STREAM, name);
    };
    // One message per pull: nats.js sends the next pull only when the loop asks for the next
    // message, so deleting the consumer in the loop's body loses exactly that pull.
    const messages = await ResumingConsume.start(open, { max_messages: 1 });
    const read: string[] = [];
    for await (const message of messages) {
      read.push(message.string());
      if (read.length === 2) await jsm.consumers.delete(STREAM, 'mid-1');
      if (message.info.pending === 0) break;
    }
    expect(read).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    expect(asked).toEqual([undefined, 2]);
    expect(messages.resumed).toBe(1);
  });

  it('ends the read when closed while it opens a new consumer', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const fromFirst = orderedFrom(js, STREAM, 'resume.a', 1);
    let opening = false;
    const messages = await ResumingConsume.start(
      async (after) => {
        opening = true;
        await gate;
        return fromFirst(after);
      },
      { max_messages: 10 },
      { first: await deletedConsumer('gone-while-closing') },
    );
    const first = messages.next();
    await until(() => opening);
    await messages.close();
    release();
    await expect(first).resolves.toEqual({ done: true, value: undefined });
  });

  it('tries again when opening the new consumer fails, and fails the read only on what no retry can change', async () => {
    const fromFirst = orderedFrom(js, STREAM, 'resume.a', 1);
    let attempts = 0;
    const flaky = await ResumingConsume.start(
      async (after) => {
        attempts += 1;
        if (attempts < 3) throw new Error('timeout');
        return fromFirst(after);
      },
      { max_messages: 100 },
      { first: await deletedConsumer('gone-then-flaky') },
    );
    expect((await readUntilEnd(flaky)).map((message) => message.string())).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    expect(attempts).toBe(3);

    const noStream = await ResumingConsume.start(orderedFrom(js, 'NO_SUCH_STREAM', 'resume.a', 1), { max_messages: 10 }, { first: await deletedConsumer('gone-no-stream') });
    await expect(readUntilEnd(noStream)).rejects.toThrow(/stream not found/);
  });

  it('replaces a consumer deleted under a waiting read, and delivers what comes next', async () => {
    const opened: Consumer[] = [];
    const fromEnd = orderedFrom(js, STREAM, 'resume.late', 1);
    const messages = await ResumingConsume.start(async (after) => {
      const consumer = await fromEnd(after);
      opened.push(consumer);
      return consumer;
    }, { max_messages: 10 });
    await js.publish('resume.late', 'l1');
    const read: string[] = [];
    const reading = (async () => {
      for await (const message of messages) {
        read.push(message.string());
        if (read.length === 2) break;
      }
    })();
    await until(() => read.length === 1);
    // As when the server holding it goes away: the waiting pull is told the consumer is gone.
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.delete(STREAM, (await (opened[0] as Consumer).info(true)).name);
    await until(() => messages.resumed === 1);
    await js.publish('resume.late', 'l2');
    await reading;
    expect(read).toEqual(['l1', 'l2']);
    expect(opened).toHaveLength(2);
  });

  it('deletes the consumers it made once the read ends, and never a durable', async () => {
    const jsm = await jetstreamManager(nc);
    const names = async () => (await jsm.consumers.list(STREAM).next()).map((info) => info.name);
    const fromFirst = orderedFrom(js, STREAM, 'resume.a', 1);
    let made: Consumer | undefined;
    const read = await ResumingConsume.start(async (after) => (made = await fromFirst(after)), { max_messages: 100 });
    const name = (await (made as Consumer).info(true)).name;
    expect(await names()).toContain(name);
    await readUntilEnd(read);
    await until(async () => !(await names()).includes(name));

    await jsm.consumers.add(STREAM, { durable_name: 'stays', ack_policy: AckPolicy.None, filter_subject: 'resume.a' });
    const durable = await js.consumers.get(STREAM, 'stays');
    await readUntilEnd(await ResumingConsume.start(() => Promise.resolve(durable), { max_messages: 100 }, { durable: true }));
    expect(await names()).toContain('stays');
  });

  it('asks a consumer that keeps losing its pulls less and less often', async () => {
    // A durable deleted by an operator: every pull goes nowhere, and opening it "again" is instant.
    const gone = await deletedConsumer('gone-for-good');
    let opens = 0;
    const messages = await ResumingConsume.start(
      async () => {
        opens += 1;
        return gone;
      },
      { max_messages: 10 },
      { first: gone, durable: true },
    );
    const reading = messages.next();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await messages.close();
    await reading;
    // Backing off (20 ms doubling to 1 s) allows at most 6 in 1.5 s; retrying at a fixed 20 ms, about 50.
    expect(opens).toBeGreaterThanOrEqual(2);
    expect(opens).toBeLessThanOrEqual(7);
  });

  it('ends a read that waits for a message when closed', async () => {
    const messages = await ResumingConsume.start(orderedFrom(js, STREAM, 'resume.none', 1), { max_messages: 10 });
    const reading = (async () => {
      let count = 0;
      for await (const _ of messages) count += 1;
      return count;
    })();
    await messages.close();
    await expect(reading).resolves.toBe(0);
  });

  it('fails the caller, not the read, when the stream is not there', async () => {
    await expect(ResumingConsume.start(orderedFrom(js, 'NO_SUCH_STREAM', 'resume.a', 1), { max_messages: 10 })).rejects.toThrow(/stream not found/);
  });

  it('opens a durable consumer again as it is: the server kept its place', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(STREAM, { durable_name: 'kept', ack_policy: AckPolicy.Explicit, filter_subjects: ['resume.a', 'resume.b'], deliver_policy: DeliverPolicy.All });
    const durable = await js.consumers.get(STREAM, 'kept');
    const messages = await ResumingConsume.start(() => Promise.resolve(durable), { max_messages: 10 }, { first: await deletedConsumer('gone-before-durable'), durable: true });
    const read: string[] = [];
    for await (const message of messages) {
      read.push(message.string());
      message.ack();
      if (message.info.pending === 0) break;
    }
    expect(read).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'b1']);
    expect(messages.resumed).toBe(1);
  });
});
