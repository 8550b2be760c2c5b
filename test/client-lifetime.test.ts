// The client's subscriptions have a lifetime, and its connection a heartbeat: waits on many
// filters never exhaust the agent's 64 subscriptions, `unsubscribe` gives one back, and a
// connection that goes silent without closing is noticed and replaced.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as connectClient, DisconnectedError, ErrorCodes, RpcError, TimeoutError, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { startStack, type TestStack } from './helpers/stack.ts';
import { startTcpProxy } from './helpers/tcp-proxy.ts';

const LIMIT = 64;
let stack: TestStack;
let host: OpstreamClient;

/** A client with the operator's token of this file's agent. */
const connect = (url: string, options: Parameters<typeof connectClient>[1] = {}) =>
  connectClient(url, { token: stack.agent.credentials.operatorToken, ...options });

beforeAll(async () => {
  stack = await startStack();
  host = stack.host;
});
afterAll(() => stack?.stop());

describe('subscription lifetime', () => {
  it('lets waitForEvent wait on more distinct filters than the agent holds subscriptions', async () => {
    const client = await connect(stack.agent.api.url);
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < LIMIT + 6; i += 1) {
        const outcome = await client.waitForEvent(`vdsm.VM.${uniqueId(`quiet${i}`)}`, 5).then(
          () => 'alert',
          (error: unknown) => (error instanceof TimeoutError ? 'timeout' : String(error)),
        );
        outcomes.push(outcome);
      }
      expect(outcomes).toEqual(Array.from({ length: LIMIT + 6 }, () => 'timeout'));
      // The lingering subscriptions still deliver: a wait after the others sees its VM's alert.
      const vmId = uniqueId('after_many');
      await client.subscribe(`vdsm.VM.${vmId}`);
      await client.vm.create(vmId);
      expect((await client.waitForEvent(`vdsm.VM.${vmId}`, 5_000)).alertName).toBe(`vdsm.VM.${vmId}`);
    } finally {
      await client.close();
    }
  });

  it('holds what subscribe took until unsubscribe gives it back', async () => {
    const client = await connect(stack.agent.api.url);
    try {
      const filters = Array.from({ length: LIMIT }, (_, i) => `vdsm.VM.${uniqueId(`held${i}`)}`);
      for (const filter of filters) await client.subscribe(filter);
      const extra = `vdsm.VM.${uniqueId('extra')}`;
      // Held subscriptions are never dropped behind the caller's back: the agent's limit shows.
      const refused = await client.subscribe(extra).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(RpcError);
      expect(refused).toMatchObject({ code: ErrorCodes.LimitExceeded });
      await client.unsubscribe(filters[0] ?? '');
      await expect(client.subscribe(extra)).resolves.toBeGreaterThanOrEqual(0);
    } finally {
      await client.close();
    }
  });

  it('delivers nothing more for a filter after its last unsubscribe', async () => {
    const vmId = uniqueId('unsub');
    const filter = `vdsm.VM.${vmId}`;
    const watcher = await connect(stack.agent.api.url);
    try {
      await watcher.subscribe(filter);
      await watcher.subscribe(filter);
      await watcher.unsubscribe(filter); // one of two holds: still subscribed
      await host.subscribe(filter);
      await host.vm.create(vmId);
      expect((await watcher.waitForEvent(filter, 5_000)).alertName).toBe(filter);
      await watcher.unsubscribe(filter);
      // Drain what arrived before the unsubscribe, then prove nothing new comes: the host sees
      // the VM's later alerts, and the watcher's agent-side subscription is gone.
      await expect(watcher.unsubscribe(filter)).rejects.toThrow(/not subscribed to "vdsm\.VM\.unsub/);
      const { seq: before } = await host.vm.getInfo(vmId);
      await host.vm.destroy(vmId);
      for (;;) {
        const event = await host.waitForEvent(filter, 5_000);
        if (event.operationInfo.extraData['state'] === 'down') break;
      }
      const late = await collect(watcher, filter);
      expect(late.filter((seq) => seq > before)).toEqual([]);
    } finally {
      await watcher.close();
    }
  });

  it('refuses an unsubscribe of a filter it never subscribed, naming it', async () => {
    await expect(host.unsubscribe('vdsm.VM.never', 'glob')).rejects.toThrow('not subscribed to "vdsm.VM.never" (glob)');
  });
});

describe('heartbeat', () => {
  it('notices a connection that went silent without closing, and reconnects', async () => {
    const proxy = await startTcpProxy(stack.agent.api.port);
    const client = await connect(`ws://127.0.0.1:${proxy.port}/rpc`, { pingIntervalMs: 100, retry: { initialIntervalMs: 20 } });
    try {
      const vmId = uniqueId('silent');
      await client.subscribe(`vdsm.VM.${vmId}`);
      proxy.freeze();
      // Without a heartbeat this wait would end in a TimeoutError after 20 s, the link never known dead.
      const error = await client.waitForEvent(`vdsm.VM.${vmId}`, 20_000).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(DisconnectedError);
      await client.waitForReconnect(10_000);
      await host.vm.create(vmId);
      expect((await client.waitForEvent(`vdsm.VM.${vmId}`, 5_000)).alertName).toBe(`vdsm.VM.${vmId}`);
    } finally {
      await client.close();
      await proxy.close();
    }
  });
});

describe('retry policy', () => {
  it('stops reconnecting when maximumAttempts are spent, and says so', async () => {
    const proxy = await startTcpProxy(stack.agent.api.port);
    const client = await connect(`ws://127.0.0.1:${proxy.port}/rpc`, { retry: { initialIntervalMs: 10, maximumAttempts: 3 } });
    try {
      await proxy.close(); // cuts the connection and refuses new ones
      while (client.connected) await new Promise((resolve) => setTimeout(resolve, 10));
      await expect(client.waitForReconnect(10_000)).rejects.toThrow(/gave up reconnecting/);
    } finally {
      await client.close();
    }
  });

  it('refuses a bad policy before connecting, naming the field', async () => {
    await expect(connect(stack.agent.api.url, { retry: { backoffCoefficient: 0 } })).rejects.toThrow(/backoffCoefficient/);
  });
});

/** Sequences the client has for `filter` now, taking until a short wait comes back empty. */
async function collect(client: OpstreamClient, filter: string): Promise<number[]> {
  const seqs: number[] = [];
  for (;;) {
    try {
      seqs.push((await client.waitForEvent(filter, 200)).seq);
    } catch (error) {
      if (error instanceof TimeoutError) return seqs;
      throw error;
    }
  }
}
