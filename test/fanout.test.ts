// The agent's one shared read of the alert stream: subscribers that start in the past catch up
// and join live with nothing missed or repeated, and one that stops reading is ended with where
// to resume, without holding the others back.
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { compileFilter } from '../src/filters/alert-filter.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { historySeal, SEAL_HEADER } from '../src/security/history-seal.ts';
import { AlertFanout, MAX_QUEUED_PER_SUBSCRIBER } from '../src/subscriptions/fanout.ts';
import { headers } from '@nats-io/transport-node';
import { NatsTestServer } from './helpers/nats-server.ts';
import { seedStream } from './helpers/seed-stream.ts';

let server: NatsTestServer;
let nc: NatsConnection;
let stream: string;
const seal = historySeal(randomBytes(32));

beforeAll(async () => {
  server = await NatsTestServer.start();
  nc = await connectNats(server.url, 'fanout-test');
  stream = await ensureAlertStream(nc);
});
afterAll(async () => {
  await nc?.drain();
  await server?.stop();
});

/** Appends one sealed, schema-valid alert, as an agent would. */
async function append(subject: string, revision: number): Promise<number> {
  const body = JSON.stringify({
    alertName: subject,
    operationInfo: { operationDescription: 'Running', stageDescription: '', stage: [1, 1], percentage: -1, lastError: [0, ''], extraData: {} },
    status: 'Up',
    state: 'Up',
    event: { type: 'WORK_DONE' },
    machine: { id: 'vm', version: 1 },
    revision,
    time: new Date().toISOString(),
  });
  const sealed = headers();
  sealed.set(SEAL_HEADER, seal.seal(subject, body));
  return (await jetstream(nc).publish(subject, body, { headers: sealed })).seq;
}

it('catches a subscriber up from the past while alerts keep coming, then goes live: every alert once, in order', async () => {
  const fanout = await AlertFanout.start(nc, { stream, seal });
  const first = await append('vdsm.VM.past', 1);
  for (let i = 2; i <= 300; i += 1) await append('vdsm.VM.past', i);
  const seen: number[] = [];
  const writing = (async () => {
    for (let i = 301; i <= 600; i += 1) await append('vdsm.VM.past', i);
  })();
  await fanout.subscribe(compileFilter('vdsm.VM.past'), first - 1, ({ seq }) => void seen.push(seq), () => undefined);
  await writing;
  while (seen.length < 600) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(seen).toHaveLength(600);
  expect(seen).toEqual([...seen].sort((a, b) => a - b));
  expect(new Set(seen).size).toBe(600);
  await fanout.stop();
});

it('catches up from the past while the shared read is still working through a burst larger than any queue', async () => {
  const fanout = await AlertFanout.start(nc, { stream, seal });
  const before = fanout.position;
  // A pipelined burst: the shared read is still far behind when the subscriber asks for the past.
  const seeding = seedStream(nc, 60, 100, undefined, 'burst', seal);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const seen: number[] = [];
  let ended = '';
  await fanout.subscribe(compileFilter('vdsm.VM.burst-*'), before, ({ seq }) => void seen.push(seq), (reason) => (ended = reason));
  const total = await seeding;
  expect(total).toBeGreaterThan(MAX_QUEUED_PER_SUBSCRIBER);
  while (seen.length < total && !ended) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(ended).toBe('');
  expect(seen).toHaveLength(total);
  expect(seen).toEqual([...seen].sort((a, b) => a - b));
  await fanout.stop();
});

it('ends a subscriber that stops reading with the sequence to resume from, and keeps serving the others', async () => {
  const fanout = await AlertFanout.start(nc, { stream, seal });
  let ended = '';
  let delivered = 0;
  // Takes one alert, then never finishes taking the next: a client that stopped reading.
  await fanout.subscribe(
    compileFilter('vdsm.VM.*'),
    undefined,
    () => (delivered++ === 0 ? undefined : new Promise<void>(() => undefined)),
    (reason) => (ended = reason),
  );
  const healthy: number[] = [];
  await fanout.subscribe(compileFilter('vdsm.VM.*'), undefined, ({ seq }) => void healthy.push(seq), () => undefined);
  const firstSeq = await append('vdsm.VM.slow', 1);
  for (let i = 2; i <= MAX_QUEUED_PER_SUBSCRIBER + 50; i += 1) await append('vdsm.VM.slow', i);
  while (healthy.length < MAX_QUEUED_PER_SUBSCRIBER + 50) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(ended).toMatch(new RegExp(`resubscribe with since=${firstSeq}$`));
  expect(fanout.subscriberCount).toBe(1);
  await fanout.stop();
});

it('skips and reports a record that is not a sealed alert, and goes on', async () => {
  const consumers = async () => (await (await jetstreamManager(nc)).streams.info(stream)).state.consumer_count;
  const before = await consumers();
  const quarantined: number[] = [];
  const fanout = await AlertFanout.start(nc, { stream, seal, onQuarantined: ({ seq }) => void quarantined.push(seq) });
  const seen: number[] = [];
  await fanout.subscribe(compileFilter('vdsm.VM.*'), undefined, ({ seq }) => void seen.push(seq), () => undefined);
  for (let i = 0; i < 10; i += 1) await fanout.subscribe(compileFilter(`vdsm.VM.x${i}`), undefined, () => undefined, () => undefined);
  const garbage = (await jetstream(nc).publish('vdsm.VM.junk', 'not json')).seq;
  const good = await append('vdsm.VM.after-junk', 1);
  while (!seen.includes(good)) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(seen).not.toContain(garbage);
  expect(quarantined).toContain(garbage);
  // It reads the stream once: one consumer, however many subscribers.
  expect(await consumers()).toBe(before + 1);
  await fanout.stop();
});
