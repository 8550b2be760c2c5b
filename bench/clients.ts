// Client-side figures: fan-out latency from append to delivery, catch-up after an outage, and
// wire messages per tracked operation against polling getInfo every second.
import type { EntityActor } from '../actors/entity-actor.ts';
import { EIO_ERROR } from '../actors/drivers/simulated-driver.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { connect, startManager, type OpstreamClient } from '../src/index.ts';
import { connectNats } from '../src/nats/connection.ts';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import { seedStream } from '../test/helpers/seed-stream.ts';
import type { FanOutClients, FanOutReport } from './fanout-clients.ts';
import { openPeer } from './peer.ts';
import { percentile, rate, type Figure } from './report.ts';
import { tsWorker } from './ts-worker.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function withAgent<T>(sim: { stepMs?: number }, use: (agent: Agent, server: NatsTestServer) => Promise<T>): Promise<T> {
  const server = await NatsTestServer.start();
  const agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim, snapshotEvery: 0 });
  try {
    return await use(agent, server);
  } finally {
    await agent.stop();
    await server.stop();
  }
}

/**
 * N WebSocket subscribers to `vdsm.VM.fan-*` while the runtime appends at a steady rate; latency is
 * from JetStream's ack of the append to the notification reaching the client. The clients run in
 * a worker thread, as they would in processes of their own: in the agent's event loop, their
 * reading and parsing counted as the agent's fan-out latency. One clock (timeOrigin + now) on both
 * threads; the agent, the load, the clients and nats-server share the machine's 2 cores.
 */
export async function benchFanOut(subscriberCounts: number[], seconds: number, perSecond: number): Promise<Figure[]> {
  return withAgent({ stepMs: 5 }, async (agent) => {
    const vms = Array.from({ length: 40 }, (_, i) => `fan-${i}`);
    const actors: EntityActor[] = [];
    const appendedAt = new Map<number, number>();
    for (const vmId of vms) {
      await agent.runtime.call({ kind: EntityKinds.VM, id: vmId }, 'VM.create', { vmId }, (task) => ({ type: 'CREATE', task, params: {} }));
      const actor = await agent.runtime.existing({ kind: EntityKinds.VM, id: vmId });
      actor.onTransition(({ seq }) => appendedAt.set(seq, performance.timeOrigin + performance.now()));
      actors.push(actor);
    }
    while (actors.some((actor) => actor.view().status !== 'Up')) await sleep(10);

    const figures: Figure[] = [];
    for (const count of subscriberCounts) {
      const clients = tsWorker(new URL('./fanout-clients.ts', import.meta.url), {
        url: agent.api.url,
        token: agent.credentials.operatorToken,
        count,
        filter: 'vdsm.VM.fan-*',
      } satisfies FanOutClients);
      const said = (kind: string) =>
        new Promise<FanOutReport>((resolve, reject) => {
          clients.once('error', reject);
          clients.once('message', (message: { kind: string } & FanOutReport) => (message.kind === kind ? resolve(message) : reject(new Error(`expected ${kind}, got ${message.kind}`))));
        });
      await said('subscribed');
      await steadyLoad(agent, actors, seconds, perSecond);
      await sleep(300);
      const received = said('received');
      clients.postMessage('stop');
      const { seqs, at } = await received;
      await clients.terminate();
      const latencies: number[] = [];
      for (const [i, seq] of seqs.entries()) {
        const appended = appendedAt.get(seq);
        if (appended !== undefined) latencies.push((at[i] as number) - appended);
      }
      latencies.sort((a, b) => a - b);
      figures.push({ name: `fan-out latency p50 / p99, ${count} subscriber${count === 1 ? '' : 's'}`, value: percentile(latencies, 50), unit: 'ms', detail: `p99 ${percentile(latencies, 99).toFixed(2)} ms over ${latencies.length} deliveries` });
    }
    return figures;
  });
}

/** Faults and continues on the VMs at a fixed rate of calls (each call leads to 1–3 alerts). */
async function steadyLoad(agent: Agent, actors: EntityActor[], seconds: number, perSecond: number): Promise<void> {
  const started = performance.now();
  let sent = 0;
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
    for (; sent < due; sent += 1) {
      const actor = actors[sent % actors.length] as EntityActor;
      const status = actor.view().status;
      const ref = actor.ref;
      if (status === 'Up') void agent.runtime.deliver(ref, { type: 'IO_ERROR', error: EIO_ERROR }).catch(() => undefined);
      else if (status === 'Paused') void agent.runtime.call(ref, 'VM.cont', { vmId: ref.id }, (task) => ({ type: 'CONT', task })).catch(() => undefined);
    }
    await sleep(2);
  }
}

/** 100,000 alerts appended while a client was away: how fast each kind of client catches up. */
export async function benchCatchUp(alerts: number): Promise<Figure[]> {
  return withAgent({}, async (agent, server) => {
    const seeder = await connectNats(server.url, 'bench-seeder');
    const before = await agent.runtime.alertLog.streamLastSequence();
    const entities = Math.ceil(alerts / 100);
    await seedStream(seeder, entities, 100, undefined, 'catch', agent.runtime.seal);
    await seeder.drain();
    const total = entities * 100;

    const client = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    const started = performance.now();
    await client.subscribe('vdsm.VM.catch-*', 'glob', before);
    let received = 0;
    while (received < total) {
      await client.waitForEvent('vdsm.VM.catch-*', 30_000);
      received += 1;
    }
    const wsSeconds = (performance.now() - started) / 1000;
    await client.close();

    let handled = 0;
    const managerStarted = performance.now();
    const manager = await startManager({ nats: server.url, durableName: 'bench-catch-up', filter: 'vdsm.VM.catch-*', onAlert: () => void (handled += 1) });
    while (handled < total) await sleep(20);
    const managerSeconds = (performance.now() - managerStarted) / 1000;
    await manager.stop();
    return [
      rate('catch-up over WebSocket (Host.subscribe since), alerts/s', total, wsSeconds),
      rate('catch-up by a durable manager (one alert in flight), alerts/s', total, managerSeconds),
    ];
  });
}

/**
 * One window in which each of `vms` VMs runs one create (demo timings, ~2.4 s) at a random time,
 * among `idle` VMs that exist and do nothing. A subscriber to vdsm.VM.wire-* and a poller calling
 * VM.getInfo on every VM each second (it must: it cannot know where or when an operation starts)
 * both track all of them; every frame either way is counted, per create tracked.
 */
export async function benchWireMessages(vms: number, windowSeconds: number, idle: number): Promise<Figure[]> {
  return withIdleVms(idle, async (agent, idleIds) => {
    const ids = Array.from({ length: vms }, (_, i) => `wire-${i}`);
    const polled = [...idleIds, ...ids];
    let subscriberFrames = 0;
    const subscriber = await openPeer(agent.api.url, agent.credentials.operatorToken, () => (subscriberFrames += 1));
    subscriberFrames += 1; // the subscribe request it sends
    await subscriber.request('Host.subscribe', { filter: 'vdsm.VM.wire-*' });

    let pollerFrames = 0;
    let rounds = 0;
    const poller = await openPeer(agent.api.url, agent.credentials.operatorToken, () => (pollerFrames += 1));
    let polling = true;
    const polls = (async () => {
      while (polling) {
        const tick = performance.now();
        await Promise.all(polled.map((vmId) => poller.request('VM.getInfo', { vmId }).finally(() => (pollerFrames += 1))));
        rounds += 1;
        await sleep(Math.max(0, 1000 - (performance.now() - tick)));
      }
    })();

    const creator: OpstreamClient = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    const started = performance.now();
    await Promise.all(
      ids.map(async (vmId) => {
        await sleep(Math.random() * (windowSeconds - 4) * 1000);
        await creator.vm.create(vmId);
      }),
    );
    // The last create's alerts (~2.4 s of them) land within this.
    await sleep(4_000);
    polling = false;
    await polls;
    const seconds = (performance.now() - started) / 1000;
    await creator.close();
    subscriber.socket.close();
    poller.socket.close();
    const perSubscribed = subscriberFrames / vms;
    const perPolled = pollerFrames / vms;
    const among = `${idle.toLocaleString('en-US')} idle VMs`;
    return [
      { name: `  subscription, among ${among}`, value: perSubscribed, unit: 'msgs', detail: `${subscriberFrames} frames for ${vms} creates` },
      {
        name: `  polling VM.getInfo on each VM every 1 s, among ${among}`,
        value: perPolled,
        unit: 'msgs',
        detail: `${pollerFrames} frames for ${vms} creates: ${rounds} rounds of ${polled.length} VMs in ${seconds.toFixed(1)} s`,
      },
      { name: `  ratio polling / subscription, among ${among}`, value: perPolled / perSubscribed, unit: '×' },
    ];
  });
}

/**
 * An agent that owns `idle` VMs (vdsm.VM.wire-idle-*, Up, 12 alerts of history each): seeded
 * sealed with its key, then recovered by a restart, as an agent that has run a while would hold them.
 */
async function withIdleVms<T>(idle: number, use: (agent: Agent, idleIds: string[]) => Promise<T>): Promise<T> {
  const server = await NatsTestServer.start();
  try {
    const options = { natsUrl: server.url, root: process.cwd(), port: 0, sim: {}, snapshotEvery: 0 };
    const seeder = await startAgent(options);
    try {
      if (idle > 0) await seedStream(seeder.nc, idle, 12, undefined, 'wire-idle', seeder.runtime.seal);
    } finally {
      await seeder.stop();
    }
    const agent = await startAgent(options);
    try {
      return await use(agent, Array.from({ length: idle }, (_, i) => `wire-idle-${i}`));
    } finally {
      await agent.stop();
    }
  } finally {
    await server.stop();
  }
}

