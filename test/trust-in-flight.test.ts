// Adversarial: work an agent holds open for callers is bounded. Bus requests are answered
// LimitExceeded beyond the agent's limit (a NATS subscription cannot be read more slowly, as a
// WebSocket is), and calls forwarded to an owner that is slow or gone cannot pile up either.
import { connect as connectRaw, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_SUBJECT, hostApiSubject, READ_API_SUBJECT } from '../src/domain/api-subjects.ts';
import { ErrorCodes, OpstreamError } from '../src/domain/errors.ts';
import { callForwarder } from '../src/fleet/forward.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { startStack, type TestStack } from './helpers/stack.ts';
import { untilVmStatus } from './helpers/trust.ts';

type Reply = { id?: unknown; result?: unknown; error?: { code: number; message: string } };

describe('bus requests in flight', () => {
  let stack: TestStack;
  let raw: NatsConnection;

  beforeAll(async () => {
    stack = await startStack({ inFlight: { busRequests: 2 } });
    await stack.host.vm.create('bus-vm');
    await untilVmStatus(stack.host, 'bus-vm', 'Up');
    raw = await connectRaw({ servers: stack.server.url, reconnect: false });
  });

  afterAll(async () => {
    await raw?.close();
    await stack?.stop();
  });

  it('answers a burst beyond the limit LimitExceeded, request by request, and serves again after it', async () => {
    const getInfo = (id: string) => ({ jsonrpc: '2.0', id, method: 'VM.getInfo', params: { vmId: 'bus-vm' } });
    // Sent in one burst: the agent's subscription takes them faster than any is answered.
    const burst = Array.from({ length: 40 }, (_, i) =>
      i % 4 === 3 ? [getInfo(`b${i}-1`), { jsonrpc: '2.0', method: 'VM.getInfo', params: { vmId: 'bus-vm' } }, getInfo(`b${i}-2`)] : getInfo(`r${i}`),
    );
    const replies = await Promise.all(burst.map(async (request) => JSON.parse((await raw.request(API_SUBJECT, JSON.stringify(request), { timeout: 10_000 })).string()) as Reply | Reply[]));

    let served = 0;
    let refused = 0;
    for (const [i, reply] of replies.entries()) {
      const request = burst[i];
      // A refused batch is answered as one: an error per request with an id, none for the notification.
      const expectedIds = Array.isArray(request) ? request.flatMap((item) => ('id' in item ? [item.id] : [])) : [request?.id];
      const items = Array.isArray(reply) ? reply : [reply];
      expect(items.map((item) => item.id)).toEqual(expectedIds);
      for (const item of items) {
        if (item.error) {
          expect(item.error.code).toBe(ErrorCodes.LimitExceeded);
          expect(item.error.message).toMatch(/working on 2 bus requests, the most it takes at once/);
          refused += 1;
        } else {
          expect(item.result).toMatchObject({ vmId: 'bus-vm', status: 'Up' });
          served += 1;
        }
      }
    }
    expect(served).toBeGreaterThanOrEqual(2);
    expect(refused).toBeGreaterThan(0);

    // The limit counts requests in progress, not requests ever made.
    const after = JSON.parse((await raw.request(API_SUBJECT, JSON.stringify(getInfo('after')), { timeout: 10_000 })).string()) as Reply;
    expect(after.result).toMatchObject({ vmId: 'bus-vm' });
  });

  it('turns frames away at the limit as it would answer them, never with a reply larger than an answer', async () => {
    const getInfo = (id: unknown) => ({ jsonrpc: '2.0', id, method: 'VM.getInfo', params: { vmId: 'bus-vm' } });
    const ask = async (subject: string, frame: unknown) => JSON.parse((await raw.request(subject, JSON.stringify(frame), { timeout: 10_000 })).string()) as Reply | Reply[];
    // Batches that keep the agent at its limit, and in the same burst, on the viewer subject, a
    // batch whose error per request would be ten times the bus's largest message.
    const busy = Array.from({ length: 3 }, (_, b) => ask(API_SUBJECT, Array.from({ length: 64 }, (_, i) => getInfo(`busy-${b}-${i}`))));
    const huge = ask(READ_API_SUBJECT, Array.from({ length: 10_000 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'VM.getInfo' })));
    const nullId = ask(API_SUBJECT, getInfo(null));
    const empty = ask(API_SUBJECT, []);
    await Promise.all(busy);

    // Refused or answered, one error for it all: a batch over 64 requests is not taken.
    expect(await huge).toMatchObject({ id: null, error: { code: ErrorCodes.LimitExceeded, message: expect.stringMatching(/limit is 64/) } });
    // A null id is a request, not a notification: it is answered either way.
    const answered = (await nullId) as Reply;
    expect(answered.id).toBeNull();
    expect(answered.result ?? answered.error?.code).toEqual(answered.result ? expect.objectContaining({ vmId: 'bus-vm' }) : ErrorCodes.LimitExceeded);
    expect(await empty).toMatchObject({ id: null, error: { code: ErrorCodes.InvalidRequest } });
    // And the agent still reads the bus.
    expect(((await ask(READ_API_SUBJECT, getInfo('alive'))) as Reply).result).toMatchObject({ vmId: 'bus-vm' });
  });
});

describe('calls forwarded in flight', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await NatsTestServer.start();
    nc = await connectRaw({ servers: server.url, reconnect: false });
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('refuses a forward beyond the limit at once while the owner sits on the others, and forwards again once it answers', async () => {
    // An owner that answers only when told to: a slow agent, or one about to be declared lost.
    const held: Msg[] = [];
    const owner = nc.subscribe(hostApiSubject('slow-owner'), {
      callback: (_error, message) => {
        held.push(message);
      },
    });
    const forward = callForwarder(nc, 'here', { maxInFlight: 2 });

    const first = forward('slow-owner', 'VM.pause', { vmId: 'a' });
    const second = forward('slow-owner', 'VM.pause', { vmId: 'b' });
    await expect.poll(() => held.length).toBe(2);

    const third = await forward('slow-owner', 'VM.pause', { vmId: 'c' }).catch((error: unknown) => error);
    expect(third).toBeInstanceOf(OpstreamError);
    expect((third as OpstreamError).code).toBe(ErrorCodes.LimitExceeded);
    expect((third as Error).message).toMatch(/VM\.pause: this agent is already forwarding 2 calls/);
    // Refused here: the owner never saw it.
    expect(held).toHaveLength(2);

    for (const message of held.splice(0)) message.respond(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { taskId: 'done' } }));
    await expect(Promise.all([first, second])).resolves.toEqual([{ taskId: 'done' }, { taskId: 'done' }]);

    const fourth = forward('slow-owner', 'VM.pause', { vmId: 'd' });
    await expect.poll(() => held.length).toBe(1);
    held[0]?.respond(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { taskId: 'again' } }));
    await expect(fourth).resolves.toEqual({ taskId: 'again' });
    owner.unsubscribe();
  });

  it('takes only a whole number of 1 or more as its limit', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => callForwarder(nc, 'here', { maxInFlight: bad })).toThrow(/forwards in flight must be a whole number, 1 or more/);
    }
  });
});
