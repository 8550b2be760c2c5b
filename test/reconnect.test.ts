// Clients across outages: the seed's pause flow through a cut network, a server restart under a
// waiting client, resuming a subscription with `since`, the bus transport, server-side filtering.
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent.ts';
import { API_SUBJECT } from '../src/domain/api-subjects.ts';
import { connectNats } from '../src/nats/connection.ts';
import {
  connect,
  connectBus,
  DisconnectedError,
  ErrorCodes,
  RpcError,
  TimeoutError,
  type AlertNotification,
  type OpstreamClient,
  type ReceivedOperationInfo,
} from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.ts';

let server: NatsTestServer;
let agent: Agent;
let proxy: TcpProxy;

beforeAll(async () => {
  server = await NatsTestServer.start();
  // Slow enough that an operation is still running when the network is cut.
  agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 60 } });
  proxy = await startTcpProxy(agent.api.port);
});
afterAll(async () => {
  await proxy?.close();
  await agent?.stop();
  await server?.stop();
});

const viaProxy = () => connect(`ws://127.0.0.1:${proxy.port}/rpc`, { token: agent.credentials.operatorToken });

async function untilUp(host: OpstreamClient, vmId: string): Promise<void> {
  while ((await host.vm.getInfo(vmId)).status !== 'Up') await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('the seed\'s pause flow with a forced disconnect in the middle', () => {
  it('completes: DisconnectedError → waitForReconnect → getInfo double check → carry on', async () => {
    const host = await viaProxy();
    const vmId = uniqueId('best_vm');
    await host.vm.create(vmId);
    await untilUp(host, vmId);
    await host.subscribe(`vdsm.VM.${vmId}`);
    await host.vm.pause(vmId);
    let disconnects = 0;
    const seen: ReceivedOperationInfo[] = [];
    setTimeout(() => proxy.cut(), 10); // the network fails while the pause is in progress

    const outcome = await (async () => {
      for (;;) {
        let opInfo: ReceivedOperationInfo;
        try {
          opInfo = (await host.waitForEvent(`vdsm.VM.${vmId}`, 2_000)).operationInfo;
        } catch (error) {
          if (error instanceof DisconnectedError) {
            disconnects += 1;
            await host.waitForReconnect();
            opInfo = (await host.vm.getInfo(vmId)).operationInfo; // double check that we didn't miss the event
          } else if (error instanceof TimeoutError) {
            opInfo = (await host.vm.getInfo(vmId)).operationInfo;
          } else {
            throw error;
          }
        }
        seen.push(opInfo);
        if (opInfo.stage[0] !== opInfo.stage[1]) continue;
        return opInfo.extraData['state'] === 'paused' ? 'SUCCESS' : opInfo.lastError;
      }
    })();
    expect(outcome).toBe('SUCCESS');
    expect(disconnects).toBe(1);
    await host.close();
  });
});

describe('resuming after a disconnect', () => {
  it('delivers what happened while the client was away, once, in order', async () => {
    const host = await viaProxy();
    const vmId = uniqueId('resume');
    await host.subscribe(`vdsm.VM.${vmId}`);
    await host.vm.create(vmId);
    const first = await host.waitForEvent(`vdsm.VM.${vmId}`, 5_000);
    proxy.cut();
    // While the client is away the create runs to its end.
    const observer = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    await untilUp(observer, vmId);
    await observer.close();
    await host.waitForReconnect();
    const received: AlertNotification[] = [first];
    while (received.at(-1)?.operationInfo.extraData['state'] !== 'up') received.push(await host.waitForEvent(`vdsm.VM.${vmId}`, 5_000));
    const seqs = received.map((alert) => alert.seq);
    expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
    const stored = [];
    for await (const { seq } of agent.runtime.alertLog.read(`vdsm.VM.${vmId}`)) stored.push(seq);
    expect(seqs).toEqual(stored);
    await host.close();
  });

  it('Host.subscribe with since replays the gap before going live', async () => {
    const host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    const vmId = uniqueId('since');
    const observer = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    const start = await observer.subscribe('vdsm.VM.*');
    await observer.close();
    await host.vm.create(vmId);
    await untilUp(host, vmId);
    await host.subscribe(`vdsm.VM.${vmId}`, 'glob', start);
    const received: AlertNotification[] = [];
    while (received.at(-1)?.operationInfo.extraData['state'] !== 'up') received.push(await host.waitForEvent(`vdsm.VM.${vmId}`, 5_000));
    expect(received[0]?.operationInfo.operationDescription).toBe('Creating');
    expect(received.every((alert) => alert.seq > start)).toBe(true);
    await expect(host.call('Host.subscribe', { filter: 'vdsm.VM.*', since: 10 ** 9 })).rejects.toMatchObject({ code: ErrorCodes.InvalidParams, message: expect.stringContaining('past the stream') });
    await host.close();
  });
});

describe('a server restart under a waiting client', () => {
  it('lets the wait complete', async () => {
    const host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    const vmId = uniqueId('restart');
    await host.subscribe(`vdsm.VM.${vmId}`);
    await host.vm.create(vmId);
    const waiting = (async () => {
      for (;;) {
        const event = await host.waitForEvent(`vdsm.VM.${vmId}`, 20_000);
        if (event.operationInfo.extraData['state'] === 'up') return event;
      }
    })();
    await server.restart();
    const up = await waiting;
    expect(up.alertName).toBe(`vdsm.VM.${vmId}`);
    await host.close();
  });
});

describe('the API over the NATS bus', () => {
  it('takes the same methods, params and errors as the WebSocket', async () => {
    const bus = await connectBus(server.url);
    const vmId = uniqueId('bus');
    await bus.subscribe(`vdsm.VM.${vmId}`);
    const { taskId } = await bus.vm.create(vmId, { memoryMiB: 128 });
    expect((await bus.getRunningTasks()).map((task) => task.id)).toContain(taskId);
    for (;;) {
      const event = await bus.waitForEvent(`vdsm.VM.${vmId}`, 5_000);
      if (event.operationInfo.extraData['state'] === 'up') break;
    }
    expect(await bus.vm.getInfo(vmId)).toMatchObject({ vmId, status: 'Up' });
    await expect(bus.vm.pause('a.b')).rejects.toMatchObject({ code: ErrorCodes.InvalidParams, message: expect.stringContaining("vmId: must not contain '.'") });
    await expect(bus.call('VM.explode', { vmId })).rejects.toBeInstanceOf(RpcError);
    await expect(bus.call('Host.subscribe', { filter: 'vdsm.VM.*' })).rejects.toMatchObject({ code: ErrorCodes.MethodNotFound, message: expect.stringContaining('durable manager') });
    await bus.close();
  });

  it('answers malformed JSON with a parse error, on a subject outside the alert stream', async () => {
    const nc = await connectNats(server.url, 'raw');
    const reply = (await nc.request(API_SUBJECT, '{"jsonrpc":"2.0",', { timeout: 5_000 })).json<{ error: { code: number; message: string } }>();
    expect(reply.error).toMatchObject({ code: ErrorCodes.ParseError, message: expect.stringContaining('Parse error') });
    const info = await (await jetstreamManager(nc)).streams.info('VDSM');
    expect(info.config.subjects).toEqual(['vdsm.>']);
    expect(API_SUBJECT.startsWith('vdsm.')).toBe(false);
    await nc.drain();
  });
});

describe('server-side filtering', () => {
  it('does not send a vdsm.VM.(a|b) subscriber the traffic of other VMs, and costs the server no consumer', async () => {
    const [a, b, c] = [uniqueId('fa'), uniqueId('fb'), uniqueId('fc')];
    const nc = await connectNats(server.url, 'inspect');
    const consumerCount = async () => {
      let count = 0;
      for await (const _consumer of (await jetstreamManager(nc)).consumers.list('VDSM')) count += 1;
      return count;
    };
    const before = await consumerCount();
    const watcher = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    await watcher.subscribe(`vdsm\\.VM\\.(${a}|${b})`, 'regexp');
    for (let i = 0; i < 20; i += 1) await watcher.subscribe(`vdsm.VM.other-${i}`);
    // Live subscriptions share the agent's one read of the stream.
    expect(await consumerCount()).toBe(before);
    await nc.drain();
    const host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    await Promise.all([a, b, c].map((vmId) => host.vm.create(vmId)));
    await Promise.all([a, b, c].map((vmId) => untilUp(host, vmId)));
    const names = new Set<string>();
    for (;;) {
      const event = await watcher.waitForEvent('vdsm.VM.*', 300).catch(() => undefined);
      if (!event) break;
      names.add(event.alertName);
    }
    expect([...names].sort()).toEqual([`vdsm.VM.${a}`, `vdsm.VM.${b}`].sort());
    await host.close();
    await watcher.close();
  });
});
