import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Driver, WorkSignal } from '../actors/drivers/driver.ts';
import { EIO_ERROR } from '../actors/drivers/simulated-driver.ts';
import { Alert } from '../src/domain/alert.ts';
import { ErrorCodes, type OpstreamError } from '../src/domain/errors.ts';
import { REDACTED } from '../src/domain/redaction.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { startTestAgent, uniqueId, type TestAgent } from './helpers/agent.ts';
import { recordAlerts } from './helpers/alerts.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

let server: NatsTestServer;
let agent: TestAgent;

beforeAll(async () => {
  server = await NatsTestServer.start();
  agent = await startTestAgent(server.url);
});
afterAll(async () => {
  await agent?.close();
  await server?.stop();
});

const vm = (id: string) => ({ kind: EntityKinds.VM, id });

async function createVm(target: TestAgent, id: string, kwargs: Record<string, unknown> = {}) {
  return target.runtime.call(vm(id), 'VM.create', { vmId: id, ...kwargs }, (task: TaskInfo) => ({
    type: 'CREATE',
    task,
    params: task.kwargs,
  }));
}

async function storedAlerts(subject: string): Promise<Alert[]> {
  const alerts: Alert[] = [];
  for await (const { alert } of agent.runtime.alertLog.alerts(subject)) alerts.push(alert);
  return alerts;
}

describe('the write path', () => {
  it('returns a task id only once its registration is in the stream', async () => {
    const id = uniqueId();
    const { taskId, seq } = await createVm(agent, id);
    const jsm = await jetstreamManager(agent.nc);
    const stored = await jsm.streams.getMessage(agent.stream, { seq });
    const alert = Alert.parse(stored?.json());
    expect(alert).toMatchObject({ alertName: `vdsm.VM.${id}`, status: 'WaitForLaunch', task: { id: taskId }, taskStatus: 'running' });
    expect(alert.operationInfo).toMatchObject({ operationDescription: 'Creating', stage: [1, 3] });
  });

  it('delivers every transition of a create in order, each already stored', async () => {
    const id = uniqueId();
    const recorder = await recordAlerts(agent.nc, agent.stream, `vdsm.VM.${id}`);
    const { taskId } = await createVm(agent, id);
    await recorder.until(({ alert }) => alert.status === 'Up');
    await recorder.stop();

    const delivered = recorder.alerts;
    expect(delivered.map(({ alert }) => alert.revision)).toEqual(delivered.map((_, i) => i + 1));
    const statuses = [...new Set(delivered.map(({ alert }) => alert.status))];
    expect(statuses).toEqual(['WaitForLaunch', 'Powering up', 'Up']);
    const percentages = delivered.map(({ alert }) => alert.operationInfo.percentage).slice(0, -1);
    expect(percentages).toEqual([...percentages].sort((a, b) => a - b));
    expect(delivered.at(-1)?.alert).toMatchObject({ task: { id: taskId }, taskStatus: 'finished' });
    expect(delivered.at(-1)?.alert.operationInfo).toMatchObject({ stage: [1, 1], extraData: { state: 'up' } });

    const stored = await storedAlerts(`vdsm.VM.${id}`);
    expect(stored).toEqual(delivered.map(({ alert }) => alert));
  });

  it('refuses a transition the state cannot take, and stores nothing', async () => {
    const id = uniqueId();
    const pause = agent.runtime.call(vm(id), 'VM.pause', { vmId: id }, (task) => ({ type: 'PAUSE', task }));
    await expect(pause).rejects.toMatchObject({ code: ErrorCodes.NoSuchEntity, message: expect.stringContaining('does not exist') });
    expect(await agent.runtime.alertLog.lastSequence(`vdsm.VM.${id}`)).toBe(0);
  });

  it('never stores a secret-named kwarg', async () => {
    const id = uniqueId();
    const recorder = await recordAlerts(agent.nc, agent.stream, `vdsm.VM.${id}`);
    await createVm(agent, id, { memoryMiB: 512, password: 'hunter2', spice: { ticketToken: 'abc123' } });
    await recorder.until(({ alert }) => alert.status === 'Up');
    await recorder.stop();
    const raw = JSON.stringify(await storedAlerts(`vdsm.VM.${id}`));
    expect(raw).not.toContain('hunter2');
    expect(raw).not.toContain('abc123');
    expect(raw).toContain(REDACTED);
    expect(raw).toContain('"memoryMiB":512');
  });

  it('pauses on EIO with the seed\'s OperationInfo', async () => {
    const id = uniqueId();
    const recorder = await recordAlerts(agent.nc, agent.stream, `vdsm.VM.${id}`);
    await createVm(agent, id);
    await recorder.until(({ alert }) => alert.status === 'Up');
    await agent.driver.injectFault(vm(id), 'EIO');
    const paused = await recorder.until(({ alert }) => alert.status === 'Paused');
    await recorder.stop();
    expect(paused.alert.operationInfo).toEqual({
      operationDescription: 'Paused',
      stageDescription: 'Paused',
      stage: [1, 1],
      percentage: -1,
      lastError: EIO_ERROR,
      extraData: { state: 'paused' },
    });
    expect(paused.alert.task).toBeUndefined();
  });

  it('migrates through its stages and ends Down on the source', async () => {
    const id = uniqueId();
    const recorder = await recordAlerts(agent.nc, agent.stream, `vdsm.VM.${id}`);
    await createVm(agent, id);
    await recorder.until(({ alert }) => alert.status === 'Up');
    const { taskId } = await agent.runtime.call(vm(id), 'VM.migrate', { vmId: id, dstHost: 'host-2' }, (task) => ({
      type: 'MIGRATE',
      task,
      dstHost: 'host-2',
    }));
    const down = await recorder.until(({ alert }) => alert.status === 'Down');
    await recorder.stop();
    const migration = recorder.alerts.filter(({ alert }) => alert.task?.id === taskId);
    expect([...new Set(migration.map(({ alert }) => alert.operationInfo.stageDescription))]).toEqual([
      'configuring',
      'copying memory',
      '',
    ]);
    expect(migration.map(({ alert }) => alert.status)).toContain('Migration Source');
    expect(down.alert).toMatchObject({ taskStatus: 'finished', operationInfo: { extraData: { state: 'down' } } });
  });

  it('marks a create cancelled when a destroy replaces it', async () => {
    const id = uniqueId();
    const { taskId: createId } = await createVm(agent, id);
    const { seq } = await agent.runtime.call(vm(id), 'VM.destroy', { vmId: id }, (task) => ({ type: 'DESTROY', task }));
    const stored = await storedAlerts(`vdsm.VM.${id}`);
    const destroy = stored.find((alert) => alert.event.type === 'DESTROY');
    expect(destroy).toMatchObject({ status: 'Powering down', cancelledTaskId: createId, taskStatus: 'running' });
    expect(seq).toBeGreaterThan(0);
  });
});

describe('one writer per entity', () => {
  it('lets one of two racing writers win and gives the other a conflict', async () => {
    const rival = await startTestAgent(server.url);
    try {
      const id = uniqueId();
      const recorder = await recordAlerts(agent.nc, agent.stream, `vdsm.VM.${id}`);
      await createVm(agent, id);
      await recorder.until(({ alert }) => alert.status === 'Up');
      await recorder.stop();
      // Both writers have read the same history and now act on it at once.
      await Promise.all([agent.runtime.existing(vm(id)), rival.runtime.existing(vm(id))]);
      const results = await Promise.allSettled([
        agent.runtime.call(vm(id), 'VM.pause', { vmId: id }, (task) => ({ type: 'PAUSE', task })),
        rival.runtime.call(vm(id), 'VM.migrate', { vmId: id, dstHost: 'h' }, (task) => ({ type: 'MIGRATE', task, dstHost: 'h' })),
      ]);
      const won = results.filter((result) => result.status === 'fulfilled');
      const lost = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect((lost[0]?.reason as OpstreamError).code).toBe(ErrorCodes.Conflict);

      const stored = await storedAlerts(`vdsm.VM.${id}`);
      expect(stored.map((alert) => alert.revision)).toEqual(stored.map((_, i) => i + 1));
      expect(stored.filter((alert) => alert.event.type === 'PAUSE' || alert.event.type === 'MIGRATE')).toHaveLength(1);
    } finally {
      await rival.close();
    }
  });

  it('stores a retried publish once (same Nats-Msg-Id)', async () => {
    const id = uniqueId();
    const recorder = await recordAlerts(agent.nc, agent.stream, `vdsm.VM.${id}`);
    await createVm(agent, id);
    await recorder.until(({ alert }) => alert.status === 'Up');
    await recorder.stop();
    const subject = `vdsm.VM.${id}`;
    const [first] = await storedAlerts(subject);
    const copy = { ...(first as Alert), revision: 99 };
    const seqA = await agent.runtime.alertLog.append(copy, await agent.runtime.alertLog.lastSequence(subject), 'retry-test:99');
    const seqB = await agent.runtime.alertLog.append(copy, seqA - 1, 'retry-test:99');
    expect(seqB).toBe(seqA);
    const stored = await storedAlerts(subject);
    expect(stored.filter((alert) => alert.revision === 99)).toHaveLength(1);
  });
});

describe('the driver signal', () => {
  it('is aborted when a state is left before its work ended, and not after the work reported its end', async () => {
    const { Runtime } = await import('../actors/runtime.ts');
    const { SimulatedDriver } = await import('../actors/drivers/simulated-driver.ts');
    const simulated = new SimulatedDriver({ stepMs: 5 });
    const started: Array<{ work: string; signal: WorkSignal }> = [];
    const driver: Driver = {
      start(request, report, signal) {
        started.push({ work: request.work, signal });
        simulated.start(request, report, signal);
      },
    };
    const runtime = await Runtime.start({ nc: agent.nc, stream: agent.stream, driver });
    const id = uniqueId();
    const recorder = await recordAlerts(agent.nc, agent.stream, `vdsm.VM.${id}`);
    try {
      await runtime.call(vm(id), 'VM.create', { vmId: id }, (task) => ({ type: 'CREATE', task, params: {} }));
      await recorder.until(({ alert }) => alert.status === 'Up');
      await runtime.call(vm(id), 'VM.pause', { vmId: id }, (task) => ({ type: 'PAUSE', task }));
      await recorder.until(({ alert }) => alert.status === 'Paused' && alert.taskStatus === 'finished');
      const aborted = Object.fromEntries(started.map(({ work, signal }) => [work, signal.aborted]));
      // prepare, powerUp and pause each reported WORK_DONE; the running VM's watch never ends and was left by the pause.
      expect(aborted).toEqual({ prepare: false, powerUp: false, watchRunning: true, pause: false, watchPaused: false });
    } finally {
      await runtime.stop();
      await recorder.stop();
    }
  });
});
