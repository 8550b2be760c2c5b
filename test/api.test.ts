import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent.ts';
import { ErrorCodes } from '../src/domain/errors.ts';
import { openRawSocket, type RawReply, type RawSocket } from './helpers/raw-socket.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { uniqueId } from './helpers/agent.ts';

let server: NatsTestServer;
let agent: Agent;
let socket: RawSocket;

beforeAll(async () => {
  server = await NatsTestServer.start();
  agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 } });
  socket = await openRawSocket(agent.api.url, agent.credentials.operatorToken);
});
afterAll(async () => {
  socket?.close();
  await agent?.stop();
  await server?.stop();
});

let nextId = 0;
async function call(method: string, params?: unknown): Promise<RawReply> {
  nextId += 1;
  return (await socket.send(JSON.stringify({ jsonrpc: '2.0', id: nextId, method, params }))) as RawReply;
}

describe('GET /healthz', () => {
  it('answers 200 when the agent is ready', async () => {
    const response = await fetch(`http://127.0.0.1:${agent.api.port}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok', quarantined: { count: 0 } });
  });
  it('shows what was quarantined only to a caller with a token', async () => {
    const response = await fetch(`http://127.0.0.1:${agent.api.port}/healthz`, { headers: { authorization: `Bearer ${agent.credentials.viewerToken}` } });
    expect(await response.json()).toEqual({ status: 'ok', quarantined: { count: 0, recent: [] } });
  });
});

describe('bad input gets a clear JSON-RPC error and the server keeps serving', () => {
  const cases: Array<[string, () => Promise<RawReply | RawReply[]>, number, RegExp]> = [
    ['malformed JSON', () => socket.send('{"jsonrpc":"2.0","id":1,"method":'), ErrorCodes.ParseError, /Parse error: .*JSON/],
    ['not a request', () => socket.send('{"id":7,"method":"VM.getInfo"}'), ErrorCodes.InvalidRequest, /"jsonrpc" must be "2.0"/],
    ['empty batch', () => socket.send('[]'), ErrorCodes.InvalidRequest, /empty batch/],
    ['unknown method', () => call('VM.explode', { vmId: 'a' }), ErrorCodes.MethodNotFound, /unknown method "VM.explode"; VM has VM.create/],
    ['positional params', () => call('VM.pause', ['a']), ErrorCodes.InvalidParams, /named params/],
    ['id with a dot', () => call('VM.pause', { vmId: 'a.b' }), ErrorCodes.InvalidParams, /vmId: must not contain '\.'/],
    ['id that is a wildcard', () => call('VM.pause', { vmId: '*' }), ErrorCodes.InvalidParams, /vmId: must not contain/],
    ['empty id', () => call('VM.pause', { vmId: '' }), ErrorCodes.InvalidParams, /vmId: must not be empty/],
    ['500-character id', () => call('VM.pause', { vmId: 'x'.repeat(500) }), ErrorCodes.InvalidParams, /vmId: must be at most 128/],
    ['wrong type', () => call('VM.pause', { vmId: 42 }), ErrorCodes.InvalidParams, /vmId: must be a string/],
    ['missing param', () => call('VM.migrate', { vmId: 'a' }), ErrorCodes.InvalidParams, /dstHost/],
    ['unknown param', () => call('VM.pause', { vmId: 'a', force: true }), ErrorCodes.InvalidParams, /force/],
    ['invalid regexp', () => call('Host.subscribe', { filter: 'vdsm.VM.(a|b', filterType: 'regexp' }), ErrorCodes.InvalidFilter, /does not compile/],
    ['filter matching nothing', () => call('Host.subscribe', { filter: 'vdsm.*' }), ErrorCodes.InvalidFilter, /can match no alert name/],
    ['unknown filterType', () => call('Host.subscribe', { filter: 'vdsm.VM.*', filterType: 'sql' }), ErrorCodes.InvalidParams, /filterType/],
    ['unknown VM', () => call('VM.getInfo', { vmId: 'nobody' }), ErrorCodes.NoSuchEntity, /VM nobody does not exist/],
    ['unknown subscription', () => call('Host.unsubscribe', { subscriptionId: 'nope' }), ErrorCodes.NoSuchSubscription, /no subscription "nope"/],
    ['oversized request', () => call('VM.create', { vmId: 'big', blob: 'x'.repeat(2 * 1024 * 1024) }), ErrorCodes.PayloadTooLarge, /limit is 1048576/],
    ['oversized kwargs', () => call('VM.create', { vmId: 'big', blob: 'x'.repeat(20_000) }), ErrorCodes.InvalidParams, /limit is 16384/],
  ];

  it.each(cases)('%s', async (_name, send, code, message) => {
    const reply = (await send()) as RawReply;
    expect(reply.error?.code).toBe(code);
    expect(reply.error?.message).toMatch(message);
    // Still serving on the same connection.
    const ok = await call('VM.getInfo', { vmId: 'nobody' });
    expect(ok.error?.code).toBe(ErrorCodes.NoSuchEntity);
  });

  it('answers each request of a batch, bad ones with their own error', async () => {
    const replies = (await socket.send(
      JSON.stringify([
        { jsonrpc: '2.0', id: 'a', method: 'VM.getInfo', params: { vmId: 'nobody' } },
        { jsonrpc: '1.0', id: 'b', method: 'VM.getInfo' },
      ]),
    )) as RawReply[];
    expect(replies.map((reply) => [reply.id, reply.error?.code])).toEqual([
      ['a', ErrorCodes.NoSuchEntity],
      ['b', ErrorCodes.InvalidRequest],
    ]);
  });

  it('refuses a transition the VM cannot take, naming its state', async () => {
    const vmId = uniqueId();
    expect((await call('VM.create', { vmId })).result).toMatchObject({ taskId: expect.any(String) });
    const again = await call('VM.create', { vmId });
    expect(again.error?.code).toBe(ErrorCodes.InvalidTransition);
    expect(again.error?.message).toMatch(new RegExp(`VM ${vmId} is (WaitForLaunch|Powering up|Up): cannot CREATE`));
  });

  it('refuses to pause a VM that is Down', async () => {
    const vmId = uniqueId();
    await call('VM.create', { vmId });
    await call('VM.destroy', { vmId });
    let status = '';
    while (status !== 'Down') {
      const info = (await call('VM.getInfo', { vmId })).result as { status: string };
      status = info.status;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const pause = await call('VM.pause', { vmId });
    expect(pause.error).toMatchObject({ code: ErrorCodes.InvalidTransition, message: expect.stringContaining('is Down: cannot PAUSE (accepts CREATE)') });
  });
});

describe('bounds on one connection', () => {
  it('refuses a 65th subscription with a clear error, and serves again after an unsubscribe', async () => {
    const bounded = await openRawSocket(agent.api.url, agent.credentials.operatorToken);
    let id = 0;
    const subscribe = async (filter: string) => {
      id += 1;
      return (await bounded.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'Host.subscribe', params: { filter } }))) as RawReply;
    };
    const first = await subscribe('vdsm.VM.limit-0');
    for (let i = 1; i < 64; i += 1) expect((await subscribe(`vdsm.VM.limit-${i}`)).error).toBeUndefined();
    const refused = await subscribe('vdsm.VM.limit-64');
    expect(refused.error).toMatchObject({ code: ErrorCodes.LimitExceeded, message: expect.stringContaining('64 subscriptions') });
    const { subscriptionId } = first.result as { subscriptionId: string };
    id += 1;
    await bounded.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'Host.unsubscribe', params: { subscriptionId } }));
    expect((await subscribe('vdsm.VM.limit-64')).error).toBeUndefined();
    bounded.close();
  });
});

describe('Host.getRunningTasks', () => {
  it('lists running tasks, filtered by id or by method name, glob or regexp', async () => {
    const vmId = uniqueId('running');
    const { taskId } = (await call('VM.create', { vmId, password: 'secret!' })).result as { taskId: string };
    const all = (await call('Host.getRunningTasks', {})).result as Array<{ id: string; methodName: string; kwargs: Record<string, unknown> }>;
    const mine = all.find((task) => task.id === taskId);
    expect(mine).toEqual({ id: taskId, methodName: 'VM.create', kwargs: { vmId, password: '<redacted>' } });
    const byMethod = (await call('Host.getRunningTasks', { filter: 'VM.create', on: 'methodName' })).result as Array<{ id: string }>;
    expect(byMethod.map((task) => task.id)).toContain(taskId);
    const none = (await call('Host.getRunningTasks', { filter: 'VM.pause', on: 'methodName' })).result as unknown[];
    expect(none).toEqual([]);
    const byRegexp = (await call('Host.getRunningTasks', { filter: `${taskId.slice(0, 8)}.*`, filterType: 'regexp' })).result as Array<{ id: string }>;
    expect(byRegexp.map((task) => task.id)).toEqual([taskId]);
    const bad = await call('Host.getRunningTasks', { filter: '(', filterType: 'regexp' });
    expect(bad.error).toMatchObject({ code: ErrorCodes.InvalidFilter, message: expect.stringContaining('does not compile') });
  });
});

describe('notifications', () => {
  it('sends the seed\'s alert notification with the stream sequence', async () => {
    const vmId = uniqueId();
    const raw = await import('ws');
    const watcher = new raw.default(agent.api.url, { headers: { authorization: `Bearer ${agent.credentials.operatorToken}` } });
    await new Promise((resolve) => watcher.once('open', resolve));
    const notifications: Array<{ method: string; params: Record<string, unknown> }> = [];
    const upSeen = new Promise<void>((resolve) =>
      watcher.on('message', (data) => {
        const message = JSON.parse(data.toString());
        if (message.method !== 'alert') return;
        notifications.push(message);
        if (message.params.operationInfo.extraData.state === 'up') resolve();
      }),
    );
    watcher.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'Host.subscribe', params: { filter: `vdsm.VM.${vmId}` } }));
    await new Promise((resolve) => watcher.once('message', resolve));
    const created = (await call('VM.create', { vmId })).result as { taskId: string; jobId: string };
    await upSeen;
    watcher.close();
    // The seed's fields and seq, plus the job and task the alert belongs to.
    expect(Object.keys(notifications[0]?.params ?? {}).sort()).toEqual(['alertName', 'jobId', 'operationInfo', 'seq', 'task']);
    expect(notifications[0]?.params['jobId']).toBe(created.jobId);
    expect(notifications.at(-1)?.params['task']).toEqual({ id: created.taskId, status: 'finished' });
    const seqs = notifications.map((n) => n.params['seq'] as number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(notifications.every((n) => n.params['alertName'] === `vdsm.VM.${vmId}`)).toBe(true);
  });
});
