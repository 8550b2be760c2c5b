// kill -9 of the agent process while a composite job is aborting: the CANCEL is in the stream, the
// reverting child has not finished; after a restart the abort completes — the child's revert
// resumes as its aborting state declares, the job runner finds its steps again by their task ids.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertLog } from '../actors/alert-log.ts';
import type { Alert } from '../src/domain/alert.ts';
import type { JobInfo } from '../src/jobs/job-info.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { connectNats } from '../src/nats/connection.ts';
import { spawnAgent } from './helpers/agent-process.ts';
import { randomUUID } from 'node:crypto';
import { startAgent, type AgentOptions } from '../src/agent.ts';
import { ErrorCodes } from '../src/domain/errors.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

process.env['OPSTREAM_LOG'] = 'error';

let server: NatsTestServer;
beforeAll(async () => {
  server = await NatsTestServer.start();
});
afterAll(async () => {
  await server?.stop();
});

const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

async function lastAlert(log: AlertLog, subject: string): Promise<Alert | undefined> {
  let last: Alert | undefined;
  for await (const { alert } of log.alerts(subject)) last = alert;
  return last;
}

describe('kill -9 while a job is aborting', () => {
  it.each([
    ['while its running child reverts', true],
    ['before its running child was told', false],
  ])('completes the abort after the agent restarts (killed %s)', async (_when, afterChildCancel) => {
    // 200 ms ticks: a migration's memory copy takes 1 s, migrateCancel 600 ms — time to kill in.
    const first = await spawnAgent(server.url, ['--sim-step-ms', '200', '--snapshot-every', '3']);
    let host: OpstreamClient = await connect(first.url, { token: first.token });
    const vms = [`crash-a-${Number(afterChildCancel)}`, `crash-b-${Number(afterChildCancel)}`];
    const created = await Promise.all(vms.map((vmId) => host.call<{ jobId: string }>('VM.create', { vmId })));
    for (const { jobId } of created) {
      await until('VM up', async () => ((await host.call<JobInfo>('Job.getInfo', { jobId })).status === 'done' ? true : undefined));
    }
    const { jobId } = await host.call<{ jobId: string }>('Host.prepareForMaintenance', { dstHost: 'h2', concurrency: 1 });
    const running = await until('a migration copying memory', async () => {
      const info = await host.call<JobInfo>('Job.getInfo', { jobId });
      const step = info.steps.find((candidate) => candidate.type === 'command' && candidate.status === 'running');
      if (!step?.alertName) return undefined;
      const vm = await host.vm.getInfo(step.alertName.split('.').pop()!);
      return vm.operationInfo.stageDescription === 'copying memory' ? step : undefined;
    });
    const nc = await connectNats(server.url, 'job-crash-test');
    const log = await AlertLog.open(nc, 'VDSM');
    expect((await host.call<{ status: string }>('Job.cancel', { jobId })).status).toBe('aborting');
    if (afterChildCancel) {
      // Kill once the job has told its running child to cancel (the child's CANCEL is stored).
      await until('the child to be cancelling', async () => ((await lastAlert(log, running.alertName!))?.event.type === 'CANCEL' ? true : undefined), 5_000);
    }
    await first.kill();
    await host.close();

    // What the crash left: the job aborting, its running child not yet reverted.
    expect((await lastAlert(log, `vdsm.Job.${jobId}`))?.status).toBe('aborting');
    const child = await lastAlert(log, running.alertName!);
    expect(child?.taskStatus).toBe('running');
    if (afterChildCancel) expect(child).toMatchObject({ event: { type: 'CANCEL' }, state: { MigrationSource: 'cancelling' } });

    const second = await spawnAgent(server.url, ['--sim-step-ms', '200']);
    host = await connect(second.url, { token: second.token });
    const ended = await until('the job to end', async () => {
      const info = await host.call<JobInfo>('Job.getInfo', { jobId });
      return info.status === 'aborting' || info.status === 'running' ? undefined : info;
    });
    expect(ended.status).toBe('aborted');
    const commands = ended.steps.filter((step) => step.type === 'command');
    expect(commands[1]?.status).toBe('skipped');
    for (const vmId of vms) expect((await host.vm.getInfo(vmId)).status).toBe('Up');
    const reverted = await lastAlert(log, running.alertName!);
    if (afterChildCancel || reverted?.taskStatus === 'cancelled') {
      expect(commands[0]?.status).toBe('aborted');
      expect(reverted).toMatchObject({ status: 'Up', taskStatus: 'cancelled', operationInfo: { lastError: [910, expect.stringMatching(/cancelled by request/)] } });
    } else {
      // Killed before the child was told: its memory copy cannot resume (onResume: fail), so the
      // migration failed at restart — the VM kept running here — and that is the step's outcome.
      expect(commands[0]?.status).toBe('failed');
      expect(reverted).toMatchObject({ status: 'Up', taskStatus: 'failed', operationInfo: { lastError: [900, expect.any(String)] } });
    }
    // Skipped VMs were never touched by this job (earlier tests' VMs are in it too: Up is Up).
    for (const step of commands.filter((candidate) => candidate.status === 'skipped')) {
      for await (const { alert } of log.alerts(step.alertName!)) expect(alert.task?.jobId).not.toBe(jobId);
    }
    await host.close();
    await second.stop();
    await nc.drain();
  }, 60_000);
});

describe('jobs across an agent restart', () => {
  const options = (): AgentOptions => ({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 }, snapshotEvery: 2 });

  it('a retry with the same jobId returns the first answer and runs nothing, within the retention', async () => {
    const vmId = `restart-${randomUUID().slice(0, 8)}`;
    const jobId = randomUUID();
    const first = await startAgent(options());
    let host = await connect(first.api.url, { token: first.credentials.operatorToken });
    const answer = await host.call('VM.create', { vmId, jobId, flowId: 'retry-flow' });
    await host.waitForJob(jobId, 10_000);
    await host.close();
    // A clean stop saves snapshots and a checkpoint: recovery will not read that history again.
    await first.stop();

    const second = await startAgent(options());
    host = await connect(second.api.url, { token: second.credentials.operatorToken });
    expect(await host.call('VM.create', { vmId, jobId, flowId: 'retry-flow' })).toEqual(answer);
    await expect(host.call('VM.destroy', { vmId, jobId })).rejects.toMatchObject({ code: ErrorCodes.JobExists });
    expect(await host.jobs.get(jobId)).toMatchObject({ status: 'done', correlationId: 'retry-flow' });
    const creates: Alert[] = [];
    for await (const { alert } of second.runtime.alertLog.alerts(`vdsm.VM.${vmId}`)) if (alert.event.type === 'CREATE') creates.push(alert);
    expect(creates).toHaveLength(1);
    await host.close();
    await second.stop();
  });

  it('forgets ended jobs older than the retention, live and after a restart', async () => {
    const agent = await startAgent({ ...options(), jobRetentionMs: 300 });
    const host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    const { jobId } = await host.vm.create(`retention-${randomUUID().slice(0, 8)}`);
    await host.waitForJob(jobId, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await expect(host.jobs.get(jobId)).rejects.toMatchObject({ code: ErrorCodes.NoSuchJob });
    await expect(host.call('Task.getInfo', { taskId: jobId })).rejects.toMatchObject({ code: ErrorCodes.NoSuchJob });
    await host.close();
    await agent.stop();
    const restarted = await startAgent({ ...options(), jobRetentionMs: 300 });
    expect(restarted.runtime.tasks.get(jobId)).toBeUndefined();
    await restarted.stop();
  });
});
