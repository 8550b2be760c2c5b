// Jobs over the API of a real agent on a real nats-server: every write call answers {taskId,
// jobId}; a caller jobId makes a retry idempotent (also after a dropped connection); jobs stay
// visible after they end; a composite prepareForMaintenance job runs its steps with bounded
// concurrency and, cancelled mid-way, keeps finished steps, reverts the running one and never
// starts the queued ones.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent.ts';
import { ErrorCodes } from '../src/domain/errors.ts';
import type { JobInfo } from '../src/jobs/job-info.ts';
import type { Alert } from '../src/domain/alert.ts';
import { replay } from '../src/cli/replay.ts';
import { verify } from '../src/replay/debugger.ts';
import { exportHistory, importHistory, loadHistory } from '../src/replay/history.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { recordAlerts } from './helpers/alerts.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { openRawSocket, type RawReply } from './helpers/raw-socket.ts';
import { startTcpProxy } from './helpers/tcp-proxy.ts';
import WebSocket from 'ws';

let server: NatsTestServer;
let agent: Agent;
let host: OpstreamClient;

beforeAll(async () => {
  server = await NatsTestServer.start();
  agent = await startAgent({
    natsUrl: server.url,
    root: process.cwd(),
    port: 0,
    sim: { stepMs: 5, timings: { copyMemory: { steps: 30, stepMs: 20 }, cancelMigration: { steps: 2, stepMs: 20 } } },
  });
  host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
});
afterAll(async () => {
  await host?.close();
  await agent?.stop();
  await server?.stop();
});

type Answer = { taskId: string; jobId: string };
const job = (jobId: string) => host.call<JobInfo>('Job.getInfo', { jobId });

async function waitForJob(jobId: string, statuses: string[], timeoutMs = 20_000): Promise<JobInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await job(jobId);
    if (statuses.includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`job ${jobId} is ${info.status}, not ${statuses.join('/')}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function historyOf(subject: string): Promise<Alert[]> {
  const alerts: Alert[] = [];
  for await (const { alert } of agent.runtime.alertLog.alerts(subject)) alerts.push(alert);
  return alerts;
}

async function upVm(vmId = uniqueId()): Promise<string> {
  const { jobId } = await host.call<Answer>('VM.create', { vmId });
  await waitForJob(jobId, ['done']);
  return vmId;
}

describe('every mutating call is a job', () => {
  it('answers {taskId, jobId}; the job stays visible after it ended, with its steps', async () => {
    const flowId = `flow-${randomUUID()}`;
    const vmId = uniqueId();
    const answer = await host.call<Answer>('VM.create', { vmId, flowId });
    expect(answer.jobId).toBe(answer.taskId);
    const done = await waitForJob(answer.jobId, ['done']);
    expect(done).toMatchObject({ jobType: 'VM.create', status: 'done', progress: 100, correlationId: flowId, entities: [`vdsm.VM.${vmId}`] });
    expect(done.steps.map((step) => [step.description, step.status])).toEqual([
      ['validating', 'done'],
      [`VM.create on vdsm.VM.${vmId}`, 'done'],
      ['finalizing', 'done'],
    ]);
    expect(done.endTime).not.toBeNull();
    const task = await host.call<{ status: string; flowId: string }>('Task.getInfo', { taskId: answer.taskId });
    expect(task).toMatchObject({ status: 'finished', flowId });
    const listed = await host.call<JobInfo[]>('Host.getJobs', { correlationId: flowId });
    expect(listed.map((info) => info.jobId)).toEqual([answer.jobId]);
    expect(await host.call<JobInfo[]>('Host.getJobs', { jobIds: [answer.jobId], status: 'running' })).toEqual([]);
    // The flowId is on every alert of the work.
    const alerts = await historyOf(`vdsm.VM.${vmId}`);
    expect(alerts.length).toBeGreaterThan(2);
    expect(alerts.every((alert) => alert.task?.flowId === flowId)).toBe(true);
  });

  it('deletes only ended jobs; cancel of an ended job answers JobNotActive', async () => {
    const vmId = await upVm();
    const { jobId } = await host.call<Answer>('VM.migrate', { vmId, dstHost: 'h2' });
    await expect(host.call('Job.delete', { jobId })).rejects.toMatchObject({ code: ErrorCodes.JobNotDone });
    await waitForJob(jobId, ['done']);
    await expect(host.call('Job.cancel', { jobId })).rejects.toMatchObject({ code: ErrorCodes.JobNotActive });
    await host.call('Job.delete', { jobId });
    await expect(job(jobId)).rejects.toMatchObject({ code: ErrorCodes.NoSuchJob });
  });

  it('a retried call with the same jobId runs once; another call with it is refused', async () => {
    const vmId = uniqueId();
    const jobId = randomUUID();
    const first = await host.call<Answer>('VM.create', { vmId, jobId });
    const again = await host.call<Answer>('VM.create', { vmId, jobId });
    expect(again).toEqual(first);
    expect(first).toEqual({ taskId: jobId, jobId });
    await expect(host.call('VM.pause', { vmId, jobId })).rejects.toMatchObject({ code: ErrorCodes.JobExists });
    await expect(host.call('VM.create', { vmId, jobId: 'not-a-uuid' })).rejects.toMatchObject({ code: ErrorCodes.InvalidParams });
    await waitForJob(jobId, ['done']);
    expect((await historyOf(`vdsm.VM.${vmId}`)).filter((alert) => alert.event.type === 'CREATE')).toHaveLength(1);
  });

  it('every kind of call given a jobId registers its task under that id', async () => {
    const asJob = async (method: string, params: Record<string, unknown>): Promise<void> => {
      const jobId = randomUUID();
      expect({ method, answer: await host.call<Answer>(method, { ...params, jobId }) }).toEqual({ method, answer: { taskId: jobId, jobId } });
      expect((await waitForJob(jobId, ['done'])).jobType).toBe(method);
    };
    const [vmId, movedId] = [uniqueId(), uniqueId()];
    await asJob('VM.create', { vmId });
    await asJob('VM.pause', { vmId });
    await asJob('VM.cont', { vmId });
    await asJob('VM.destroy', { vmId });
    await asJob('VM.create', { vmId: movedId });
    await asJob('VM.migrate', { vmId: movedId, dstHost: 'h2' });
    const [base, copy, layer] = [uniqueId('img'), uniqueId('img'), uniqueId('img')];
    await asJob('Image.create', { imageId: base, size: 1 << 20 });
    await asJob('Image.copy', { imageId: base, dstImageId: copy });
    await asJob('Image.create', { imageId: layer, baseImageId: copy });
    await asJob('Image.merge', { imageId: layer });
    await asJob('Image.delete', { imageId: base });
  });

  it('a retry after the connection dropped before the answer runs once', async () => {
    const proxy = await startTcpProxy(agent.api.port);
    const vmId = uniqueId();
    const jobId = randomUUID();
    const history = await recordAlerts(agent.nc, 'VDSM', `vdsm.VM.${vmId}`);
    const socket = new WebSocket(`ws://127.0.0.1:${proxy.port}${new URL(agent.api.url).pathname}`, { headers: { authorization: `Bearer ${agent.credentials.operatorToken}` } });
    await new Promise((resolve) => socket.once('open', resolve));
    socket.on('error', () => undefined);
    let answered = false;
    socket.on('message', () => (answered = true));
    // The request leaves; the link is cut as soon as its work is in the stream.
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.create', params: { vmId, jobId } }));
    await history.until(({ alert }) => alert.event.type === 'CREATE');
    proxy.cut();
    expect(typeof answered).toBe('boolean');
    const retried = await host.call<Answer>('VM.create', { vmId, jobId });
    expect(retried).toEqual({ taskId: jobId, jobId });
    await waitForJob(jobId, ['done']);
    expect(history.alerts.filter(({ alert }) => alert.event.type === 'CREATE')).toHaveLength(1);
    await history.stop();
    await proxy.close();
  });

  it('a JSON-RPC batch of mutating calls gives one job per call', async () => {
    const socket = await openRawSocket(agent.api.url, agent.credentials.operatorToken);
    const ids = [uniqueId(), uniqueId(), uniqueId()];
    const replies = (await socket.send(
      JSON.stringify(ids.map((vmId, index) => ({ jsonrpc: '2.0', id: index + 1, method: 'VM.create', params: { vmId } }))),
    )) as RawReply[];
    socket.close();
    const jobIds = replies.map((reply) => (reply.result as Answer).jobId);
    expect(new Set(jobIds).size).toBe(3);
    for (const jobId of jobIds) expect((await waitForJob(jobId, ['done'])).jobType).toBe('VM.create');
  });
});

const JOB_FIXTURE = new URL('./fixtures/histories/job-maintenance-aborted.json', import.meta.url).pathname;

describe('composite job: Host.prepareForMaintenance', () => {
  it('a recorded aborted job history still replays (replay --verify)', async () => {
    const history = await importHistory(JOB_FIXTURE);
    expect(history.alerts.map(({ alert }) => alert.status)).toContain('aborting');
    expect(verify(history)).toMatchObject({ ok: true, verified: history.alerts.length });
  });

  it('over 6 VMs, cancelled mid-way: finished migrations stay, the running one reverts, queued ones never start', async () => {
    // Only this test's VMs are Up: earlier tests' VMs were migrated away (Down) first.
    for (const vm of agent.runtime.entitiesOf('VM')) if (vm.view().status === 'Up') await host.call('VM.destroy', { vmId: vm.ref.id });
    const vms: string[] = [];
    for (let index = 0; index < 6; index += 1) vms.push(await upVm());
    const alerts = await recordAlerts(agent.nc, 'VDSM', 'vdsm.>');
    const { jobId } = await host.call<Answer>('Host.prepareForMaintenance', { dstHost: 'h9', concurrency: 1 });
    // Wait until two migrations ended and the third is copying memory.
    const third = await (async () => {
      for (;;) {
        const info = await job(jobId);
        const commands = info.steps.filter((step) => step.type === 'command');
        if (commands.filter((step) => step.status === 'done').length >= 2 && commands.some((step) => step.status === 'running')) return info;
        if (process.env['DEBUG_JOBS']) console.log(info.status, commands.map((step) => step.status).join(','));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    expect(third.status).toBe('running');
    const cancel = await host.call<{ status: string }>('Job.cancel', { jobId });
    expect(cancel.status).toBe('aborting');
    const aborted = await waitForJob(jobId, ['aborted', 'done', 'failed']);
    expect(aborted.status).toBe('aborted');
    const commands = aborted.steps.filter((step) => step.type === 'command');
    expect(commands).toHaveLength(6);
    const byStatus = (status: string) => commands.filter((step) => step.status === status);
    expect(byStatus('done').length).toBeGreaterThanOrEqual(2);
    expect(byStatus('aborted').length + byStatus('done').length + byStatus('skipped').length).toBe(6);
    expect(byStatus('aborted').length).toBe(1);
    expect(byStatus('skipped').length).toBeGreaterThanOrEqual(1);
    // Finished migrations stay (Down here), the reverted VM is Up, skipped ones were never touched.
    for (const step of commands) {
      const vmId = step.alertName!.split('.').pop()!;
      const { status } = await host.vm.getInfo(vmId);
      expect(status).toBe(step.status === 'done' ? 'Down' : 'Up');
      const touched = alerts.alerts.filter(({ alert }) => alert.alertName === step.alertName);
      if (step.status === 'skipped') expect(touched).toEqual([]);
      if (step.status === 'aborted') expect(touched.some(({ alert }) => alert.taskStatus === 'cancelled')).toBe(true);
    }
    // The job's own alerts: running, aborting (stored before the outcome), aborted.
    const jobAlerts = alerts.alerts.filter(({ alert }) => alert.alertName === `vdsm.Job.${jobId}`).map(({ alert }) => alert.status);
    expect(jobAlerts[0]).toBe('running');
    expect(jobAlerts).toContain('aborting');
    expect(jobAlerts.at(-1)).toBe('aborted');
    expect(vms).toHaveLength(6);
    await alerts.stop();

    // The job's history and the reverted VM's replay through today's machines.
    const reverted = commands.find((step) => step.status === 'aborted')!;
    for (const alertName of [`vdsm.Job.${jobId}`, reverted.alertName!]) {
      const history = await loadHistory(agent.runtime.alertLog, alertName);
      expect(verify(history)).toMatchObject({ ok: true, verified: history.alerts.length });
    }
    const log = console.log;
    console.log = () => undefined;
    try {
      expect(await replay(`vdsm.Job.${jobId}`, { verify: true, json: true, natsUrl: server.url, stream: 'VDSM' })).toBe(0);
    } finally {
      console.log = log;
    }
    if (process.env['RECORD_JOB_FIXTURE']) await exportHistory(JOB_FIXTURE, await loadHistory(agent.runtime.alertLog, `vdsm.Job.${jobId}`));
  });

  it('runs every migration then every disconnect to done', async () => {
    const vms = [await upVm(), await upVm()];
    const { jobId } = await host.call<Answer>('Host.prepareForMaintenance', { dstHost: 'h3', concurrency: 2 });
    const done = await waitForJob(jobId, ['done', 'failed', 'aborted']);
    expect(done.status).toBe('done');
    for (const vmId of vms) expect((await host.vm.getInfo(vmId)).status).toBe('Down');
    expect(done.steps.find((step) => step.id === 'executing')?.status).toBe('done');
  });
});
