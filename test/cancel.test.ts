// Cancel of each required state, checked on the stream of a real nats-server: the CANCEL alert
// (the aborting state) lands before the revert's outcome, and a cancelled task ends `cancelled`
// with a lastError saying so. Refusing states answer CancelRefused naming the state and reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANCELLED_CODE } from '../machines/entity.ts';
import { ErrorCodes, isOpstreamError } from '../src/domain/errors.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { startTestAgent, uniqueId, type TestAgent } from './helpers/agent.ts';
import { recordAlerts, type AlertRecorder } from './helpers/alerts.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

const slow = { steps: 200, stepMs: 20 };
const quick = { steps: 1, stepMs: 10 };
let server: NatsTestServer;
let agent: TestAgent;

beforeAll(async () => {
  server = await NatsTestServer.start();
  agent = await startTestAgent(server.url, {
    timings: {
      prepare: slow, powerUp: quick, prepareMigration: quick, copyMemory: slow, powerDown: slow,
      createImage: quick, copyImage: slow, mergeImage: slow, connect: slow, rebalance: slow, createVolume: quick, startVolume: quick,
      abortCreate: quick, cancelMigration: { steps: 2, stepMs: 20 }, abortCopy: quick, abortConnect: quick, stopRebalance: quick,
    },
  });
});
afterAll(async () => {
  await agent?.close();
  await server?.stop();
});

type Ref = { kind: (typeof EntityKinds)[keyof typeof EntityKinds]; id: string };
const call = (ref: Ref, method: string, event: (task: TaskInfo) => { type: string } & Record<string, unknown>) =>
  agent.runtime.call(ref, method, { id: ref.id }, event);
const watch = (ref: Ref): Promise<AlertRecorder> => recordAlerts(agent.nc, agent.stream, `vdsm.${ref.kind}.${ref.id}`);
const settledIn = (recorder: AlertRecorder, status: string) =>
  recorder.until(({ alert }) => alert.status === status && alert.operationInfo.stage[0] === alert.operationInfo.stage[1]);

/** Cancels `taskId` and checks the stream: CANCEL stored first, then the task ends cancelled in `endStatus`. */
async function cancelAndCheck(recorder: AlertRecorder, taskId: string, endStatus: string) {
  const outcome = await agent.runtime.cancelTask(taskId);
  expect(outcome.policy).toBe('revert');
  const ended = await recorder.until(({ alert }) => alert.task?.id === taskId && alert.taskStatus === 'cancelled');
  const cancel = recorder.alerts.find(({ alert }) => alert.event.type === 'CANCEL');
  expect(cancel?.alert.taskStatus).toBe('running');
  expect(cancel!.seq).toBeLessThan(ended.seq);
  expect(ended.alert.status).toBe(endStatus);
  expect(ended.alert.operationInfo.lastError[0]).toBe(CANCELLED_CODE);
  expect(ended.alert.operationInfo.lastError[1]).toMatch(/^cancelled by request/);
  await expect.poll(() => agent.runtime.tasks.get(taskId)?.status).toBe('cancelled');
  return { cancel, ended };
}

async function upVm(): Promise<Ref> {
  const vm = { kind: EntityKinds.VM, id: uniqueId() };
  const recorder = await watch(vm);
  await call(vm, 'VM.create', (task) => ({ type: 'CREATE', task, params: {} }));
  // `prepare` is slow in this file: cancel-free VMs get through it by a WORK_DONE of their own.
  await recorder.until(({ alert }) => alert.status === 'WaitForLaunch');
  await agent.runtime.deliver(vm, { type: 'WORK_DONE' });
  await settledIn(recorder, 'Up');
  await recorder.stop();
  return vm;
}

describe('cancel policy of each required state', () => {
  it('VM migration reverts: migrateCancel, the VM stays Up on the source', async () => {
    const vm = await upVm();
    const recorder = await watch(vm);
    const { taskId } = await call(vm, 'VM.migrate', (task) => ({ type: 'MIGRATE', task, dstHost: 'host-2' }));
    await recorder.until(({ alert }) => JSON.stringify(alert.state).includes('copyingMemory'));
    const { cancel } = await cancelAndCheck(recorder, taskId, 'Up');
    expect(cancel?.alert.state).toEqual({ MigrationSource: 'cancelling' });
    expect((await agent.runtime.existing(vm)).view().status).toBe('Up');
    await recorder.stop();
  });

  it('VM create in configuring reverts to Down', async () => {
    const vm = { kind: EntityKinds.VM, id: uniqueId() };
    const recorder = await watch(vm);
    const { taskId } = await call(vm, 'VM.create', (task) => ({ type: 'CREATE', task, params: {} }));
    await recorder.until(({ alert }) => alert.status === 'WaitForLaunch');
    await cancelAndCheck(recorder, taskId, 'Down');
    await recorder.stop();
  });

  it('VM powering down refuses, naming the state and the reason', async () => {
    const vm = await upVm();
    const { taskId } = await call(vm, 'VM.destroy', (task) => ({ type: 'DESTROY', task }));
    const refusal = await agent.runtime.cancelTask(taskId).catch((error: unknown) => error);
    expect(isOpstreamError(refusal, ErrorCodes.CancelRefused)).toBe(true);
    expect((refusal as Error).message).toMatch(/PoweringDown.*Powering down.*a destroy cannot be undone/);
    expect((await agent.runtime.existing(vm)).view().status).toBe('Powering down');
  });

  it('Image copy reverts to Absent; a merge refuses', async () => {
    const source = { kind: EntityKinds.Image, id: uniqueId('img') };
    const created = await watch(source);
    await call(source, 'Image.create', (task) => ({ type: 'CREATE', task, size: 1024, baseImageId: null }));
    await settledIn(created, 'OK');
    const copy = { kind: EntityKinds.Image, id: uniqueId('img') };
    const recorder = await watch(copy);
    const { taskId } = await call(copy, 'Image.copy', (task) => ({ type: 'COPY_FROM', task, sourceImageId: source.id, size: 1024 }));
    await recorder.until(({ alert }) => alert.state === 'Copying' && alert.operationInfo.percentage > 0);
    await cancelAndCheck(recorder, taskId, 'Absent');

    const layer = { kind: EntityKinds.Image, id: uniqueId('img') };
    const layerAlerts = await watch(layer);
    await call(layer, 'Image.create', (task) => ({ type: 'CREATE', task, size: null, baseImageId: source.id }));
    await settledIn(layerAlerts, 'OK');
    const merge = await call(layer, 'Image.merge', (task) => ({ type: 'MERGE', task }));
    const refusal = await agent.runtime.cancelTask(merge.taskId).catch((error: unknown) => error);
    expect(isOpstreamError(refusal, ErrorCodes.CancelRefused)).toBe(true);
    expect((refusal as Error).message).toMatch(/Merging.*committed into the base image/);
    await Promise.all([created.stop(), recorder.stop(), layerAlerts.stop()]);
  });

  it('storage connection connecting reverts to Disconnected', async () => {
    const connection = { kind: EntityKinds.StorageConnection, id: uniqueId('nfs') };
    const recorder = await watch(connection);
    const { taskId } = await call(connection, 'StorageConnection.connect', (task) => ({ type: 'CONNECT', task, params: { server: 'nfs1' } }));
    await recorder.until(({ alert }) => alert.status === 'Connecting');
    await cancelAndCheck(recorder, taskId, 'Disconnected');
    await recorder.stop();
  });

  it('gluster rebalance stops', async () => {
    const volume = { kind: EntityKinds.GlusterVolume, id: uniqueId('vol') };
    const recorder = await watch(volume);
    await call(volume, 'GlusterVolume.create', (task) => ({ type: 'CREATE', task, bricks: ['h1:/b1'] }));
    await settledIn(recorder, 'Stopped');
    await call(volume, 'GlusterVolume.start', (task) => ({ type: 'START', task }));
    await settledIn(recorder, 'Started');
    const { taskId } = await call(volume, 'GlusterVolume.rebalanceStart', (task) => ({ type: 'REBALANCE_START', task }));
    await recorder.until(({ alert }) => alert.state === 'Rebalancing');
    const { ended } = await cancelAndCheck(recorder, taskId, 'Started');
    expect(ended.alert.operationInfo.extraData['rebalance']).toBe('stopped');
    await recorder.stop();
  });

  it('a second cancel changes nothing; cancel of an ended task answers JobNotActive', async () => {
    const vm = await upVm();
    const recorder = await watch(vm);
    const { taskId } = await call(vm, 'VM.migrate', (task) => ({ type: 'MIGRATE', task, dstHost: 'host-2' }));
    await recorder.until(({ alert }) => JSON.stringify(alert.state).includes('copyingMemory'));
    await agent.runtime.cancelTask(taskId);
    const second = await agent.runtime.cancelTask(taskId).catch((error: unknown) => error);
    if (!isOpstreamError(second, ErrorCodes.JobNotActive)) expect((second as { policy: string }).policy).toBe('rollForward');
    await recorder.until(({ alert }) => alert.taskStatus === 'cancelled');
    expect(recorder.alerts.filter(({ alert }) => alert.event.type === 'CANCEL')).toHaveLength(1);
    const late = await agent.runtime.cancelTask(taskId).catch((error: unknown) => error);
    expect(isOpstreamError(late, ErrorCodes.JobNotActive)).toBe(true);
    await recorder.stop();
  });

  it('a work whose driver goes silent fails as stalled (the timer is the runtime\'s)', async () => {
    const stalling = await startTestAgent(server.url, { timings: { prepare: { steps: 2, stepMs: 60_000 } } });
    try {
      // A second runtime on the same stream, with a short stall limit for `prepare`.
      const { Runtime } = await import('../actors/runtime.ts');
      const runtime = await Runtime.start({ nc: stalling.nc, stream: stalling.stream, driver: stalling.driver, stallTimeouts: { prepare: 150 } });
      const vm = { kind: EntityKinds.VM, id: uniqueId() };
      const recorder = await watch(vm);
      await runtime.call(vm, 'VM.create', {}, (task) => ({ type: 'CREATE', task, params: {} }));
      const failed = await recorder.until(({ alert }) => alert.taskStatus === 'failed');
      expect(failed.alert.status).toBe('Down');
      expect(failed.alert.operationInfo.lastError[1]).toMatch(/"prepare" stalled: the driver reported nothing/);
      await runtime.stop();
      await recorder.stop();
    } finally {
      await stalling.close();
    }
  });

  it('a watch over a running VM never stalls: it reports only when something happens', async () => {
    const warnings: string[] = [];
    const logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (message: string) => warnings.push(message) };
    const { Runtime } = await import('../actors/runtime.ts');
    // Every work without a limit of its own stalls after 50 ms here; creating the VM has time.
    const runtime = await Runtime.start({ nc: agent.nc, stream: agent.stream, driver: agent.driver, defaultStallMs: 50, stallTimeouts: { prepare: 60_000, powerUp: 60_000 }, logger });
    const vm = { kind: EntityKinds.VM, id: uniqueId() };
    const recorder = await watch(vm);
    try {
      await runtime.call(vm, 'VM.create', {}, (task) => ({ type: 'CREATE', task, params: {} }));
      await settledIn(recorder, 'Up');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(warnings).not.toContain('work stalled');
      expect((await runtime.existing(vm)).view().status).toBe('Up');
    } finally {
      await runtime.stop();
      await recorder.stop();
    }
  });
});
