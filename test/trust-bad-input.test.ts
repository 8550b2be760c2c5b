// Adversarial: a generated corpus of hostile JSON-RPC frames over the WebSocket and over NATS
// request/reply. Each must get its exact error code with a message naming what was wrong, and
// none may write anything: the stream and the agent's entities are unchanged afterwards, and the
// agent still serves.
import { connect as connectRaw, type NatsConnection } from '@nats-io/transport-node';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_SUBJECT } from '../src/domain/api-subjects.ts';
import { buildCorpus, type BadInput, type Expectation, type Transport } from './helpers/bad-input-corpus.ts';
import { startStack, type TestStack } from './helpers/stack.ts';
import { untilVmStatus } from './helpers/trust.ts';

type Reply = { id?: unknown; result?: unknown; error?: { code: number; message: string } };

let stack: TestStack;
let raw: NatsConnection;
let socket: WebSocket;
const corpus = buildCorpus();
let lastSeqBefore = 0;
let entitiesBefore = 0;

/** The WebSocket: one request at a time, the next frame that is not a notification is its reply. */
const pending: Array<(reply: Reply | Reply[]) => void> = [];
function sendWs(text: string | Buffer): Promise<Reply | Reply[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reply within 10 s')), 10_000);
    pending.push((reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
    socket.send(text, { binary: typeof text !== 'string' });
  });
}

async function sendNats(text: string): Promise<Reply | Reply[]> {
  const message = await raw.request(API_SUBJECT, text, { timeout: 10_000 });
  return JSON.parse(message.string()) as Reply | Reply[];
}

/** What is wrong with `reply` for `input`, or undefined when it is right. */
function problem(input: BadInput, transport: Transport, reply: Reply | Reply[]): string | undefined {
  const expected: Expectation = typeof input.expect === 'object' ? input.expect[transport] : input.expect;
  const items = Array.isArray(reply) ? reply : [reply];
  if (input.batch !== undefined) {
    if (!Array.isArray(reply)) return `expected a batch of ${input.batch}, got ${JSON.stringify(reply).slice(0, 200)}`;
    if (reply.length !== input.batch) return `expected ${input.batch} replies, got ${reply.length}`;
  } else if (Array.isArray(reply)) {
    return `expected one reply, got a batch ${JSON.stringify(reply).slice(0, 200)}`;
  }
  for (const item of items) {
    if (expected === 'ok') {
      if (item.error || !('result' in item)) return `expected a result, got ${JSON.stringify(item).slice(0, 200)}`;
      continue;
    }
    if (item.error?.code !== expected) return `expected ${expected}, got ${JSON.stringify(item).slice(0, 300)}`;
    const mentions = input.mentions;
    if (mentions !== undefined && !(typeof mentions === 'string' ? item.error.message.includes(mentions) : mentions.test(item.error.message))) {
      return `message does not mention ${String(mentions)}: ${item.error.message.slice(0, 300)}`;
    }
  }
  return undefined;
}

beforeAll(async () => {
  stack = await startStack();
  await stack.host.vm.create('corpus-vm');
  await untilVmStatus(stack.host, 'corpus-vm', 'Up');
  raw = await connectRaw({ servers: stack.server.url, reconnect: false });
  socket = new WebSocket(stack.agent.api.url, { headers: { authorization: `Bearer ${stack.agent.credentials.operatorToken}` }, maxPayload: 64 * 1024 * 1024 });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as Reply | Reply[] | { method: string };
    if (!Array.isArray(message) && 'method' in message) return;
    pending.shift()?.(message as Reply | Reply[]);
  });
  lastSeqBefore = await stack.agent.runtime.alertLog.streamLastSequence();
  entitiesBefore = stack.agent.runtime.entityCount;
}, 60_000);

afterAll(async () => {
  socket?.close();
  await raw?.close();
  await stack?.stop();
});

describe('a corpus of bad inputs', () => {
  it('holds at least 300 cases', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(300);
    expect(new Set(corpus.map((input) => input.name)).size).toBe(corpus.length);
  });

  it('gets the exact error over the WebSocket', async () => {
    const wrong: string[] = [];
    for (const input of corpus.filter((entry) => entry.only !== 'nats')) {
      const reply = await sendWs(input.text).catch((error: unknown) => ({ error: { code: Number.NaN, message: String(error) } }));
      const why = problem(input, 'ws', reply);
      if (why) wrong.push(`${input.name}: ${why}`);
    }
    expect(wrong).toEqual([]);
  }, 120_000);

  it('answers a binary frame with Invalid Request over the WebSocket', async () => {
    const reply = (await sendWs(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.getInfo', params: { vmId: 'corpus-vm' } })))) as Reply;
    expect(reply.error?.code).toBe(-32600);
    expect(reply.error?.message).toMatch(/binary/);
  });

  it('gets the exact error over NATS request/reply', async () => {
    const wrong: string[] = [];
    for (const input of corpus.filter((entry) => entry.only !== 'ws')) {
      const reply = await sendNats(input.text).catch((error: unknown) => ({ error: { code: Number.NaN, message: String(error) } }));
      const why = problem(input, 'nats', reply);
      if (why) wrong.push(`${input.name}: ${why}`);
    }
    expect(wrong).toEqual([]);
  }, 120_000);

  it('wrote nothing and kept no actor, and the agent still serves', async () => {
    expect(await stack.agent.runtime.alertLog.streamLastSequence()).toBe(lastSeqBefore);
    expect(stack.agent.runtime.entityCount).toBe(entitiesBefore);
    const ws = (await sendWs(JSON.stringify({ jsonrpc: '2.0', id: 'last', method: 'VM.getInfo', params: { vmId: 'corpus-vm' } }))) as Reply;
    expect(ws.result).toMatchObject({ vmId: 'corpus-vm', status: 'Up' });
    const nats = (await sendNats(JSON.stringify({ jsonrpc: '2.0', id: 'last', method: 'VM.getInfo', params: { vmId: 'corpus-vm' } }))) as Reply;
    expect(nats.result).toMatchObject({ vmId: 'corpus-vm', status: 'Up' });
    expect((await fetchHealth()).status).toBe(200);
  });
});

async function fetchHealth(): Promise<{ status: number }> {
  const response = await fetch(stack.agent.api.url.replace(/^ws/, 'http').replace(/\/rpc$/, '/healthz'));
  await response.text();
  return { status: response.status };
}
