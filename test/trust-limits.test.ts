// Adversarial: the agent's bounds under a hostile client — the subscription limit against one
// frame or a burst, feeds closed with their connection, a client that never reads, lookups of ids
// nobody created, notifications, a batch racing the image dependency checks, SIGTERM with idle
// connections open, and ReDoS filters measured in the agent process's own CPU time.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as connectTcp, type Socket } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as connectRaw, type NatsConnection } from '@nats-io/transport-node';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type OpstreamClient } from '../src/index.ts';
import { DEFAULT_STREAM } from '../src/nats/alert-stream.ts';
import { spawnAgent, type AgentProcess } from './helpers/agent-process.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { openFrameWriter } from './helpers/raw-ws-frames.ts';
import { startStack, type TestStack } from './helpers/stack.ts';

type Reply = { id?: unknown; result?: unknown; error?: { code: number; message: string } };

let stack: TestStack;
let raw: NatsConnection;

beforeAll(async () => {
  stack = await startStack();
  raw = await connectRaw({ servers: stack.server.url, reconnect: false });
}, 60_000);

afterAll(async () => {
  await raw?.close();
  await stack?.stop();
});

/** A ws client that collects replies by id (and ignores notifications). */
async function openClient(url: string, token: string) {
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const replies = new Map<unknown, Reply>();
  const unnamed: Reply[] = [];
  let wake: () => void = () => undefined;
  socket.on('message', (data) => {
    const parsed = JSON.parse(data.toString()) as Reply | Reply[] | { method: string };
    if (!Array.isArray(parsed) && 'method' in parsed) return;
    for (const reply of Array.isArray(parsed) ? parsed : [parsed as Reply]) {
      if (reply.id === null || reply.id === undefined) unnamed.push(reply);
      else replies.set(reply.id, reply);
    }
    wake();
  });
  return {
    socket,
    replies,
    unnamed,
    /** Resolves once `count` replies with an id (or `unnamedCount` without) have arrived. */
    async until(count: number, unnamedCount = 0, timeoutMs = 30_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (replies.size < count || unnamed.length < unnamedCount) {
        if (Date.now() > deadline) throw new Error(`only ${replies.size}/${count} replies (${unnamed.length}/${unnamedCount} without id)`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
    },
  };
}

const req = (id: string | number, method: string, params?: unknown) => ({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

async function consumerCount(): Promise<number> {
  const jsm = await jetstreamManager(raw);
  let count = 0;
  for await (const _ of jsm.consumers.list(DEFAULT_STREAM)) count += 1;
  return count;
}

async function untilConsumers(predicate: (count: number) => boolean, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const count = await consumerCount();
    if (predicate(count) || Date.now() > deadline) return count;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('subscription limits', () => {
  it('refuses 5,000 Host.subscribe in one batch frame and keeps no feed', async () => {
    const before = await consumerCount();
    const client = await openClient(stack.agent.api.url, stack.agent.credentials.viewerToken);
    try {
      client.socket.send(JSON.stringify(Array.from({ length: 5_000 }, (_, i) => req(i, 'Host.subscribe', { filter: 'vdsm.VM.*' }))));
      await client.until(0, 1);
      expect(client.unnamed[0]?.error?.code).toBe(106);
      expect(await consumerCount()).toBe(before);
    } finally {
      client.socket.close();
    }
  });

  it('accepts at most 64 of 5,000 Host.subscribe sent in one burst of frames and batches', async () => {
    const before = await consumerCount();
    const client = await openClient(stack.agent.api.url, stack.agent.credentials.viewerToken);
    try {
      // 2,500 single frames and 2,500 more in batches of 50, all written before any reply is read.
      for (let i = 0; i < 2_500; i += 1) client.socket.send(JSON.stringify(req(`s${i}`, 'Host.subscribe', { filter: 'vdsm.VM.*' })));
      for (let b = 0; b < 50; b += 1) {
        client.socket.send(JSON.stringify(Array.from({ length: 50 }, (_, i) => req(`b${b}-${i}`, 'Host.subscribe', { filter: 'vdsm.VM.*' }))));
      }
      await client.until(5_000, 0, 60_000);
      const accepted = [...client.replies.values()].filter((reply) => reply.result !== undefined);
      const refused = [...client.replies.values()].filter((reply) => reply.error?.code === 106);
      expect(accepted.length).toBeGreaterThan(0);
      expect(accepted.length).toBeLessThanOrEqual(64);
      expect(accepted.length + refused.length).toBe(5_000);
      expect(await consumerCount()).toBeLessThanOrEqual(before + 64);
    } finally {
      client.socket.close();
    }
    // ...and those feeds go with the connection.
    expect(await untilConsumers((count) => count <= before, 15_000)).toBeLessThanOrEqual(before);
  }, 90_000);

  it('leaves no consumer behind when the connection closes while subscribes are in flight', async () => {
    const before = await untilConsumers(() => false, 0);
    for (let round = 0; round < 3; round += 1) {
      const client = await openClient(stack.agent.api.url, stack.agent.credentials.viewerToken);
      client.socket.send(JSON.stringify(Array.from({ length: 64 }, (_, i) => req(i, 'Host.subscribe', { filter: `vdsm.VM.*`, since: 0 }))));
      // Gone while the feeds are opening: at once, or once the first consumers exist.
      if (round > 0) await untilConsumers((count) => count > before, 5_000);
      client.socket.terminate();
    }
    // Ordered consumers a live feed keeps pulling stay forever; stopped ones are deleted or expire.
    expect(await untilConsumers((count) => count <= before, 20_000)).toBeLessThanOrEqual(before);
  }, 40_000);
});

describe('ids nobody created', () => {
  it('10,000 VM.getInfo and 1,000 VM.pause of unknown ids keep no actor and write nothing', async () => {
    const entities = stack.agent.runtime.entityCount;
    const lastSeq = await stack.agent.runtime.alertLog.streamLastSequence();
    const client = await openClient(stack.agent.api.url, stack.agent.credentials.operatorToken);
    try {
      for (let frame = 0; frame < 10_000 / 50; frame += 1) {
        client.socket.send(JSON.stringify(Array.from({ length: 50 }, (_, i) => req(`g${frame}-${i}`, 'VM.getInfo', { vmId: `never-${frame}-${i}` }))));
      }
      for (let frame = 0; frame < 1_000 / 50; frame += 1) {
        client.socket.send(JSON.stringify(Array.from({ length: 50 }, (_, i) => req(`p${frame}-${i}`, 'VM.pause', { vmId: `never-p-${frame}-${i}` }))));
      }
      await client.until(11_000, 0, 60_000);
      const codes = new Set([...client.replies.values()].map((reply) => reply.error?.code));
      expect([...codes]).toEqual([100]);
    } finally {
      client.socket.close();
    }
    for (let i = 0; i < 500; i += 1) {
      const message = await raw.request('opstream.api', JSON.stringify(req(i, 'VM.getInfo', { vmId: `never-bus-${i}` })), { timeout: 5_000 });
      expect((JSON.parse(message.string()) as Reply).error?.code).toBe(100);
    }
    expect(stack.agent.runtime.entityCount).toBe(entities);
    expect(await stack.agent.runtime.alertLog.streamLastSequence()).toBe(lastSeq);
  }, 90_000);
});

describe('notifications', () => {
  it('are never answered, over the WebSocket or the bus, whatever they hold', async () => {
    const client = await openClient(stack.agent.api.url, stack.agent.credentials.operatorToken);
    try {
      const notifications = [
        { jsonrpc: '2.0', method: 'VM.getInfo', params: { vmId: 'nobody' } },
        { jsonrpc: '2.0', method: 'VM.getInfo', params: { vmId: 'a.b' } },
        { jsonrpc: '2.0', method: 'No.such' },
        { jsonrpc: '2.0', method: 'VM.getInfo', params: { deep: JSON.parse('['.repeat(100) + ']'.repeat(100)) as unknown } },
      ];
      for (const notification of notifications) client.socket.send(JSON.stringify(notification));
      client.socket.send(JSON.stringify(notifications));
      client.socket.send(JSON.stringify(req('after', 'VM.getInfo', { vmId: 'nobody' })));
      await client.until(1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect({ named: [...client.replies.keys()], unnamed: client.unnamed }).toEqual({ named: ['after'], unnamed: [] });
    } finally {
      client.socket.close();
    }
    await expect(raw.request('opstream.api', JSON.stringify({ jsonrpc: '2.0', method: 'VM.getInfo', params: { vmId: 'nobody' } }), { timeout: 500 })).rejects.toThrow(
      /timeout|TIMEOUT/i,
    );
  });
});

describe('image dependency checks against one batch', () => {
  it('does not accept [Image.copy S→D, Image.create L base S, Image.delete S] whole', async () => {
    const host: OpstreamClient = stack.host;
    const s = `src-${process.pid}`;
    await host.call('Image.create', { imageId: s, size: 1024 * 1024 });
    const deadline = Date.now() + 10_000;
    while ((await host.call<{ status: string }>('Image.getInfo', { imageId: s })).status !== 'OK') {
      if (Date.now() > deadline) throw new Error(`${s} never became OK`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const client = await openClient(stack.agent.api.url, stack.agent.credentials.operatorToken);
    try {
      client.socket.send(
        JSON.stringify([
          req('copy', 'Image.copy', { imageId: s, dstImageId: `dst-${process.pid}` }),
          req('layer', 'Image.create', { imageId: `layer-${process.pid}`, baseImageId: s }),
          req('delete', 'Image.delete', { imageId: s }),
        ]),
      );
      await client.until(3);
      const outcome = Object.fromEntries([...client.replies].map(([id, reply]) => [id, reply.error ? reply.error.code : 'accepted']));
      const deleteRefused = outcome['delete'] !== 'accepted';
      const dependentsRefused = outcome['copy'] !== 'accepted' && outcome['layer'] !== 'accepted';
      expect({ outcome, consistent: deleteRefused || dependentsRefused }).toMatchObject({ consistent: true });
    } finally {
      client.socket.close();
    }
  });
});

// ---- an agent in its own process: its CPU and memory are its own ----

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
};
const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

describe('an agent process under hostile clients', () => {
  let server: NatsTestServer;
  let agent: AgentProcess;
  let operator: OpstreamClient;
  const RUNNING = 64;

  beforeAll(async () => {
    server = await NatsTestServer.start();
    // Work that takes minutes per step: every created VM keeps a running task.
    agent = await spawnAgent(server.url, ['--sim-step-ms', '600000', '--snapshot-every', '0']);
    operator = await connect(agent.url, { token: agent.token });
    // Digits: text that the redaction's URL pattern scans in linear time (letters it does not; see below).
    for (let i = 0; i < RUNNING; i += 1) await operator.vm.create(`slow-${i}`, { note: '0'.repeat(15_000) });
  }, 90_000);

  afterAll(async () => {
    await operator?.close();
    await agent?.kill();
    await server?.stop();
  });

  it('has a running task per VM (the ground the filters below run over)', async () => {
    expect((await operator.getRunningTasks('*')).length).toBe(RUNNING);
  });

  it('answers ReDoS regexps in Host.getRunningTasks within 100 ms of its CPU', async () => {
    const patterns = ['[0-9a-f-]{8}([0-9a-f-]+)+z', '([0-9a-f-]+)+z', '(.*-)*z', '(a|[0-9a-f]|-)*z'];
    for (const filter of patterns) {
      for (const on of ['id', 'methodName']) {
        const before = cpuMs(agent.pid);
        const tasks = await operator.call<unknown[]>('Host.getRunningTasks', { filter, filterType: 'regexp', on });
        const spent = cpuMs(agent.pid) - before;
        expect({ filter, on, tasks: tasks.length, overBudget: spent > 100 ? spent : false }).toEqual({ filter, on, tasks: 0, overBudget: false });
      }
    }
  });

  it('matches a ReDoS subscription filter against hostile alert names within 100 ms of its CPU', async () => {
    const client = await openClient(agent.url, agent.token);
    try {
      const filters = ['vdsm\\.VM\\.((a+))+b', 'vdsm\\.VM\\.(a|aa)+b', 'vdsm\\.VM\\.(a*)*b'];
      for (const [i, filter] of filters.entries()) client.socket.send(JSON.stringify(req(`sub${i}`, 'Host.subscribe', { filter, filterType: 'regexp' })));
      await client.until(filters.length);
      expect([...client.replies.values()].map((reply) => reply.error)).toEqual(filters.map(() => undefined));
      const before = cpuMs(agent.pid);
      // Names that make a backtracking engine try every split of the a's.
      for (let i = 0; i < 4; i += 1) await operator.vm.create(`${'a'.repeat(100 + i)}c`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const spent = cpuMs(agent.pid) - before;
      expect(spent).toBeLessThanOrEqual(100);
    } finally {
      client.socket.close();
    }
  });

  it('redacts a VM.create whose kwargs hold 16 KB of letters within 100 ms of its CPU', async () => {
    // redactValue's URL pattern /([a-z][a-z0-9+.-]*:\/\/…/ backtracks from every letter to the end.
    for (const [i, text] of ['n'.repeat(16_000), 'nfs'.repeat(5_300), `${'a'.repeat(8_000)}://${'b'.repeat(7_900)}`].entries()) {
      const before = cpuMs(agent.pid);
      await operator.vm.create(`letters-${i}`, { note: text });
      const spent = cpuMs(agent.pid) - before;
      expect({ i, overBudget: spent > 100 ? spent : false }).toEqual({ i, overBudget: false });
    }
  });

  it('disconnects a client that never reads while it floods requests, and its memory stays bounded', async () => {
    const baseline = rssBytes(agent.pid);
    const writer = await openFrameWriter(agent.url, agent.token);
    let peak = baseline;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssBytes(agent.pid));
      } catch {
        // the process is gone: the test below says so
      }
    }, 25);
    try {
      // Each reply carries every running task (~1 MB); the requests are ~100 bytes.
      const requests = 120;
      for (let i = 0; i < requests; i += 1) writer.sendText(JSON.stringify(req(i, 'Host.getRunningTasks', { filter: '*' })));
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const { bytes, closed } = await writer.drain(5_000);
      expect({ closed, allDelivered: bytes >= requests * RUNNING * 15_000 }).toEqual({ closed: true, allDelivered: false });
    } finally {
      clearInterval(sampler);
      writer.destroy();
    }
    expect(peak - baseline).toBeLessThan(300 * 1024 * 1024);
    // Still serving others.
    expect((await operator.getRunningTasks('*')).length).toBeGreaterThanOrEqual(RUNNING);
  }, 30_000);

  it('exits within its deadline on SIGTERM with idle TCP connections open to its API port', async () => {
    const port = Number(new URL(agent.url).port);
    const open = async (prefix?: string): Promise<Socket> => {
      const socket = connectTcp({ host: '127.0.0.1', port });
      await new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      socket.on('error', () => undefined);
      if (prefix) socket.write(prefix);
      return socket;
    };
    const sockets = [await open(), await open('GET /healthz HTTP/1.1\r\nHost: x\r\n'), await open('GET /rpc HTTP/1.1\r\n')];
    const idleWs = await openFrameWriter(agent.url, agent.token);
    await operator.close();
    try {
      const exited = await Promise.race([agent.stop().then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000))]);
      expect(exited).toBe(true);
    } finally {
      for (const socket of sockets) socket.destroy();
      idleWs.destroy();
    }
  }, 30_000);
});

describe('an agent process told to stop twice', () => {
  it('stops once, cleanly, when a second SIGTERM comes while it stops', async () => {
    const server = await NatsTestServer.start();
    try {
      const agent = await spawnAgent(server.url);
      // As a service manager's TERM on top of a Ctrl-C, or `timeout` passing its own on.
      process.kill(agent.pid, 'SIGTERM');
      process.kill(agent.pid, 'SIGTERM');
      // Killed by the second signal, it would not have stopped what it started (an embedded nats-server).
      expect(await agent.exited).toEqual({ code: 0, signal: null });
    } finally {
      await server.stop();
    }
  }, 30_000);
});
