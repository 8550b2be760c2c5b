// Jobs: what the job layer costs a call (the same calls through the API with and without it, in one
// run), and how fast a cancel takes effect (Job.cancel → the job's aborted outcome) under a steady
// ~300 calls/s of other work.
import { randomUUID } from 'node:crypto';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { Runtime } from '../actors/runtime.ts';
import { API_METHODS, Dispatcher, PLAIN_METHODS } from '../src/api/dispatcher.ts';
import { storageAllowList } from '../src/api/storage-allow-list.ts';
import { AlertFanout } from '../src/subscriptions/fanout.ts';
import type { ApiContext } from '../src/api/method.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import { percentile, rate, type Figure } from './report.ts';

export type JobsBenchOptions = { vms: number; cycles: number; cancels: number; backgroundPerSecond: number };

export async function benchJobs({ vms, cycles, cancels, backgroundPerSecond }: JobsBenchOptions): Promise<Figure[]> {
  const server = await NatsTestServer.start();
  const nc = await connectNats(server.url, 'bench-jobs');
  try {
    const stream = await ensureAlertStream(nc);
    // Everything answers at once but a migration's memory copy, which runs until it is cancelled.
    const driver = new SimulatedDriver({ stepMs: 0, timings: { copyMemory: { steps: 10_000, stepMs: 50 } } });
    const runtime = await Runtime.start({ nc, stream, driver });
    await runtime.recover();
    const fanout = await AlertFanout.start(nc, { stream });
    const context: ApiContext = { runtime, role: 'operator', storageAllow: storageAllowList([]), fanout };
    const plain = new Dispatcher(PLAIN_METHODS);
    const jobs = new Dispatcher(API_METHODS);

    // Warm both paths up first (JIT, connections), then ABBA so a growing stream weighs alike.
    for (const [side, dispatcher] of [['plain', plain], ['jobs', jobs]] as const) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => driveVm(runtime, dispatcher, context, `warm-${side}-${i}`, cycles, side === 'jobs')));
    }
    let plainSeconds = 0;
    let jobSeconds = 0;
    let calls = 0;
    for (const [round, side] of (['plain', 'jobs', 'jobs', 'plain'] as const).entries()) {
      const dispatcher = side === 'plain' ? plain : jobs;
      const ids = Array.from({ length: vms }, (_, i) => `ovh-${round}-${i}`);
      const began = performance.now();
      const counts = await Promise.all(ids.map((id) => driveVm(runtime, dispatcher, context, id, cycles, side === 'jobs')));
      const seconds = (performance.now() - began) / 1000;
      calls += counts.reduce((sum, count) => sum + count, 0) / 2;
      if (side === 'plain') plainSeconds += seconds;
      else jobSeconds += seconds;
    }
    const perSide = calls / 2;

    const { latencies, backgroundRate } = await cancelLatencies(runtime, jobs, context, cancels, backgroundPerSecond);
    await fanout.stop();
    await runtime.stop();
    latencies.sort((a, b) => a - b);
    return [
      rate('plain calls (no job layer), awaited per VM', perSide, plainSeconds),
      rate('the same calls as jobs (caller jobId + flowId)', perSide, jobSeconds),
      { name: 'ratio jobs / plain', value: plainSeconds / jobSeconds, unit: '×' },
      { name: 'background calls during the cancels', value: backgroundRate, unit: '/s' },
      { name: 'cancel latency p50 (Job.cancel → aborted)', value: percentile(latencies, 50), unit: 'ms' },
      { name: 'cancel latency p99', value: percentile(latencies, 99), unit: 'ms', detail: `${latencies.length} cancels` },
    ];
  } finally {
    await nc.drain();
    await server.stop();
  }
}

async function driveVm(runtime: Runtime, dispatcher: Dispatcher, context: ApiContext, vmId: string, cycles: number, asJob: boolean): Promise<number> {
  let calls = 0;
  const call = async (method: string, status: string) => {
    const extra = asJob ? { jobId: randomUUID(), flowId: 'bench' } : {};
    await dispatcher.invoke(method, { vmId, ...extra }, context);
    calls += 1;
    await untilStatus(runtime, vmId, status);
  };
  await call('VM.create', 'Up');
  for (let cycle = 0; cycle < cycles; cycle += 1) {
    await call('VM.pause', 'Paused');
    await call('VM.cont', 'Up');
  }
  return calls;
}

/** Migrations cancelled one after another while background calls run at `perSecond`. */
async function cancelLatencies(
  runtime: Runtime,
  dispatcher: Dispatcher,
  context: ApiContext,
  cancels: number,
  perSecond: number,
): Promise<{ latencies: number[]; backgroundRate: number }> {
  const background = Array.from({ length: 60 }, (_, i) => `bg-${i}`);
  const targets = Array.from({ length: cancels }, (_, i) => `cancel-${i}`);
  await Promise.all([...background, ...targets].map((vmId) => driveVm(runtime, dispatcher, context, vmId, 0, true)));
  let next = 0;
  let issued = 0;
  const began = performance.now();
  const timer = setInterval(() => {
    for (let i = 0; i < perSecond / 100; i += 1) {
      const vmId = background[next++ % background.length] as string;
      const status = statusOf(runtime, vmId);
      const method = status === 'Up' ? 'VM.pause' : status === 'Paused' ? 'VM.cont' : undefined;
      if (!method) continue;
      issued += 1;
      void dispatcher.invoke(method, { vmId }, context).catch(() => undefined);
    }
  }, 10);
  const latencies: number[] = [];
  try {
    for (const vmId of targets) {
      const { jobId } = (await dispatcher.invoke('VM.migrate', { vmId, dstHost: 'h2' }, context)) as { jobId: string };
      await untilStage(runtime, vmId, 'copying memory');
      const ended = new Promise<void>((resolve) => {
        const off = runtime.tasks.onChange((record) => {
          if (record.task.id !== jobId || record.status === 'running') return;
          off();
          resolve();
        });
      });
      const began = performance.now();
      await dispatcher.invoke('Job.cancel', { jobId }, context);
      await ended;
      latencies.push(performance.now() - began);
    }
  } finally {
    clearInterval(timer);
  }
  return { latencies, backgroundRate: issued / ((performance.now() - began) / 1000) };
}

function statusOf(runtime: Runtime, vmId: string): string | undefined {
  const actor = runtime.entitiesOf(EntityKinds.VM).find((candidate) => candidate.ref.id === vmId);
  // Only a settled VM takes the next call; one mid-operation is skipped this round.
  return actor && actor.view().task === null ? actor.view().status : undefined;
}

async function untilStatus(runtime: Runtime, vmId: string, status: string): Promise<void> {
  const actor = await runtime.existing({ kind: EntityKinds.VM, id: vmId });
  if (actor.view().status === status && actor.view().task === null) return;
  await new Promise<void>((resolve) => {
    const off = actor.onTransition(({ alert }) => {
      if (alert.status !== status || alert.taskStatus === 'running') return;
      off();
      resolve();
    });
  });
}

async function untilStage(runtime: Runtime, vmId: string, stage: string): Promise<void> {
  const actor = await runtime.existing({ kind: EntityKinds.VM, id: vmId });
  if (actor.view().operationInfo.stageDescription === stage) return;
  await new Promise<void>((resolve) => {
    const off = actor.onTransition(({ alert }) => {
      if (alert.operationInfo.stageDescription !== stage) return;
      off();
      resolve();
    });
  });
}
