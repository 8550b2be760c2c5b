// Rebuilding from the stream: restarts with and without snapshots, untrusted snapshots, planted
// divergence, resume policies, and the running-task registry.
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESUME_FAILED } from '../actors/entity-actor.ts';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { Runtime } from '../actors/runtime.ts';
import { checkpointKey, snapshotKey, SnapshotStore } from '../actors/snapshot-store.ts';
import { ErrorCodes } from '../src/domain/errors.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { createLogger } from '../src/log.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { uniqueId } from './helpers/agent.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

let server: NatsTestServer;
beforeAll(async () => {
  server = await NatsTestServer.start();
});
afterAll(async () => {
  await server?.stop();
});

const logger = createLogger('test');
const vm = (id: string) => ({ kind: EntityKinds.VM, id });

/** A runtime on its own connection, as one agent process would have. */
async function startRuntime(options: { snapshots?: boolean; snapshotEvery?: number; stepMs?: number; bucket?: string } = {}) {
  const nc = await connectNats(server.url, 'recovery-test');
  const stream = await ensureAlertStream(nc);
  const snapshots = options.snapshots ? await SnapshotStore.open(nc, logger, { bucket: options.bucket }) : undefined;
  const driver = new SimulatedDriver({ stepMs: options.stepMs ?? 2 });
  const runtime = await Runtime.start({ nc, stream, driver, snapshots, snapshotEvery: options.snapshotEvery });
  return {
    nc,
    runtime,
    driver,
    /** A clean shutdown: snapshots and checkpoint. */
    async stop() {
      await runtime.stop();
      await nc.drain();
    },
    /** As if the process died: no snapshots, no checkpoint, work abandoned mid-way. */
    async crash() {
      runtime.halt();
      await nc.close();
    },
  };
}

type Agent = Awaited<ReturnType<typeof startRuntime>>;

async function untilStatus(agent: Agent, id: string, status: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const actor = await agent.runtime.existing(vm(id));
  while (actor.view().status !== status) {
    if (Date.now() > deadline) throw new Error(`${id} stayed ${actor.view().status}, expected ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const create = (agent: Agent, id: string) =>
  agent.runtime.call(vm(id), 'VM.create', { vmId: id }, (task: TaskInfo) => ({ type: 'CREATE', task, params: {} }));
const pause = (agent: Agent, id: string) => agent.runtime.call(vm(id), 'VM.pause', { vmId: id }, (task) => ({ type: 'PAUSE', task }));
const cont = (agent: Agent, id: string) => agent.runtime.call(vm(id), 'VM.cont', { vmId: id }, (task) => ({ type: 'CONT', task }));

async function cycle(agent: Agent, id: string, times: number): Promise<void> {
  for (let i = 0; i < times; i += 1) {
    await pause(agent, id);
    await untilStatus(agent, id, 'Paused');
    await cont(agent, id);
    await untilStatus(agent, id, 'Up');
  }
}

describe('rebuild by replay', () => {
  it('rebuilds every entity on start, with the state and sequence it had', async () => {
    const first = await startRuntime();
    await first.runtime.recover();
    const [a, b] = [uniqueId(), uniqueId()];
    await create(first, a);
    await create(first, b);
    await untilStatus(first, a, 'Up');
    await untilStatus(first, b, 'Up');
    await pause(first, b);
    await untilStatus(first, b, 'Paused');
    const before = [(await first.runtime.existing(vm(a))).lastSeq, (await first.runtime.existing(vm(b))).lastSeq];
    await first.stop();

    const second = await startRuntime();
    const report = await second.runtime.recover();
    expect(report.entities.map(({ ref }) => ref.id)).toEqual(expect.arrayContaining([a, b]));
    const [actorA, actorB] = [await second.runtime.existing(vm(a)), await second.runtime.existing(vm(b))];
    expect(actorA.view().status).toBe('Up');
    expect(actorB.view().status).toBe('Paused');
    expect([actorA.lastSeq, actorB.lastSeq]).toEqual(before);
    // And it carries on from there.
    await cont(second, b);
    await untilStatus(second, b, 'Up');
    await second.stop();
  });
});

describe('snapshots', () => {
  it('recovers from the newest snapshot plus the tail, and from a checkpoint reads nothing', async () => {
    const bucket = 'SNAP_TAIL';
    const first = await startRuntime({ snapshots: true, snapshotEvery: 5, bucket });
    await first.runtime.recover();
    const id = uniqueId();
    await create(first, id);
    await untilStatus(first, id, 'Up');
    await cycle(first, id, 3);
    const lastSeq = (await first.runtime.existing(vm(id))).lastSeq;
    await first.crash();

    // After a crash: snapshots every 5 alerts, so at most the last few alerts of this VM replay.
    const second = await startRuntime({ snapshots: true, snapshotEvery: 5, bucket });
    const crashed = await second.runtime.recover();
    expect(crashed.snapshotsUsed).toBeGreaterThan(0);
    const recovered = await second.runtime.existing(vm(id));
    expect(recovered.lastSeq).toBe(lastSeq);
    expect(recovered.view().status).toBe('Up');
    await second.stop();

    // After a clean shutdown: a checkpoint covers the whole stream; nothing is replayed.
    const third = await startRuntime({ snapshots: true, snapshotEvery: 5, bucket });
    const clean = await third.runtime.recover();
    expect(clean.alertsReplayed).toBe(0);
    expect((await third.runtime.existing(vm(id))).view().status).toBe('Up');
    await third.stop();
  });

  it('does not trust a snapshot of another machine version, nor a corrupt one', async () => {
    const bucket = 'SNAP_DISTRUST';
    const first = await startRuntime({ snapshots: true, snapshotEvery: 1000, bucket });
    await first.runtime.recover();
    const [stale, corrupt] = [uniqueId('stale'), uniqueId('corrupt')];
    await create(first, stale);
    await create(first, corrupt);
    await untilStatus(first, stale, 'Up');
    await untilStatus(first, corrupt, 'Up');
    await pause(first, stale);
    await untilStatus(first, stale, 'Paused');
    await first.stop();

    const kvConnection = await connectNats(server.url, 'kv-test');
    const kv = await new Kvm(kvConnection).open(bucket);
    const entry = await kv.get(snapshotKey(vm(stale)));
    const stored = entry?.json<{ machine: { version: number }; snapshot: { value: unknown } }>();
    // A snapshot that claims Up from a machine version that no longer exists.
    await kv.put(snapshotKey(vm(stale)), JSON.stringify({ ...stored, machine: { id: 'vm', version: 99 }, snapshot: { ...stored?.snapshot, value: 'Up' } }));
    await kv.put(snapshotKey(vm(corrupt)), '{not json');
    // Without the clean stop's image the next start reads the KV's snapshots one by one.
    await (await new Objm(kvConnection).open(`${bucket}_IMAGES`)).delete(checkpointKey());
    await kvConnection.drain();

    const second = await startRuntime({ snapshots: true, bucket });
    const report = await second.runtime.recover();
    expect(report.alertsReplayed).toBeGreaterThan(0);
    expect((await second.runtime.existing(vm(stale))).view().status).toBe('Paused');
    expect((await second.runtime.existing(vm(corrupt))).view().status).toBe('Up');
    await second.stop();
  });
});

describe('divergence', () => {
  it('refuses to own an entity whose history today\'s machine does not reproduce', async () => {
    const first = await startRuntime();
    await first.runtime.recover();
    const id = uniqueId('diverged');
    await create(first, id);
    await untilStatus(first, id, 'Up');
    const actor = await first.runtime.existing(vm(id));
    let revision = 0;
    for await (const { alert } of first.runtime.alertLog.alerts(`vdsm.VM.${id}`)) revision = alert.revision;
    await first.stop();

    // Plant an alert that claims a PAUSE led straight to Down: no VM machine does that.
    const nc = await connectNats(server.url, 'planter');
    const last = (await jetstream(nc).publish(`vdsm.VM.${id}`, JSON.stringify({
      alertName: `vdsm.VM.${id}`,
      operationInfo: { operationDescription: 'Stopped', stageDescription: '', stage: [1, 1], percentage: -1, lastError: [0, ''], extraData: { state: 'down' } },
      status: 'Down',
      state: 'Down',
      event: { type: 'PAUSE', task: { id: 'planted', methodName: 'VM.pause', kwargs: {} } },
      machine: { id: 'vm', version: 1 },
      revision: revision + 1,
      time: new Date().toISOString(),
    }), { expect: { lastSubjectSequence: actor.lastSeq } })).seq;
    await nc.drain();

    const second = await startRuntime();
    await second.runtime.recover();
    const reloaded = await second.runtime.existing(vm(id));
    expect(reloaded.divergence).toMatchObject({ seq: last, recorded: 'Down', recomputed: 'Pausing' });
    expect(() => reloaded.view()).toThrow(expect.objectContaining({ code: ErrorCodes.EntityDiverged, message: expect.stringContaining(`sequence ${last}`) }));
    await expect(pause(second, id)).rejects.toMatchObject({ code: ErrorCodes.EntityDiverged });
    await second.stop();
  });
});

describe('resume after a crash', () => {
  it('restarts an interrupted create under the same task id', async () => {
    const first = await startRuntime({ stepMs: 40 });
    await first.runtime.recover();
    const id = uniqueId('create');
    const { taskId } = await create(first, id);
    await first.crash();

    const second = await startRuntime({ stepMs: 2 });
    await second.runtime.recover();
    await untilStatus(second, id, 'Up');
    const alerts = [];
    for await (const { alert } of second.runtime.alertLog.alerts(`vdsm.VM.${id}`)) alerts.push(alert);
    expect(alerts.at(-1)).toMatchObject({ status: 'Up', task: { id: taskId }, taskStatus: 'finished' });
    await second.stop();
  });

  it('fails an interrupted memory copy with a clear lastError, leaving the VM up', async () => {
    const first = await startRuntime({ stepMs: 2 });
    await first.runtime.recover();
    const id = uniqueId('migrate');
    await create(first, id);
    await untilStatus(first, id, 'Up');
    await first.crash();
    const slow = await startRuntime({ stepMs: 2 });
    await slow.runtime.recover();
    const { taskId } = await slow.runtime.call(vm(id), 'VM.migrate', { vmId: id, dstHost: 'h2' }, (task) => ({ type: 'MIGRATE', task, dstHost: 'h2' }));
    await untilStatus(slow, id, 'Migration Source');
    const actor = await slow.runtime.existing(vm(id));
    while (actor.view().operationInfo.stageDescription !== 'copying memory') await new Promise((resolve) => setTimeout(resolve, 1));
    await slow.crash();

    const third = await startRuntime({ stepMs: 2 });
    await third.runtime.recover();
    const resumed = await third.runtime.existing(vm(id));
    expect(resumed.view().status).toBe('Up');
    expect(resumed.view().operationInfo.lastError).toEqual([RESUME_FAILED, expect.stringContaining('Migration cannot be resumed')]);
    const alerts = [];
    for await (const { alert } of third.runtime.alertLog.alerts(`vdsm.VM.${id}`)) alerts.push(alert);
    expect(alerts.at(-1)).toMatchObject({ task: { id: taskId }, taskStatus: 'failed' });
    await third.stop();
  });
});

describe('running tasks', () => {
  it('lists registered, unfinished tasks, filtered by id or method name', async () => {
    const agent = await startRuntime({ stepMs: 30 });
    await agent.runtime.recover();
    const [a, b] = [uniqueId('tasks'), uniqueId('tasks')];
    const { taskId } = await create(agent, a);
    await create(agent, b);
    // Other tests' entities live in the same stream: look at ours.
    const running = agent.runtime.runningTasks().map(({ task }) => task).filter((task) => [a, b].includes(String(task.kwargs['vmId'])));
    expect(running.map((task) => task.id)).toContain(taskId);
    expect(running.map((task) => task.methodName)).toEqual(['VM.create', 'VM.create']);
    await untilStatus(agent, a, 'Up');
    await untilStatus(agent, b, 'Up');
    expect(agent.runtime.runningTasks().map(({ task }) => task.id)).not.toContain(taskId);
    await agent.stop();
  });

  it('survives a restart: a task running at the crash is running after it', async () => {
    const first = await startRuntime({ stepMs: 50 });
    await first.runtime.recover();
    const id = uniqueId('survivor');
    const { taskId } = await create(first, id);
    await first.crash();
    const second = await startRuntime({ stepMs: 50 });
    await second.runtime.recover();
    expect(second.runtime.runningTasks().map(({ task }) => task.id)).toContain(taskId);
    await untilStatus(second, id, 'Up');
    await second.stop();
  });
});
