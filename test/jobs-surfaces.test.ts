// Jobs as users reach them: the client library (host.jobs, waitForJob) and the command line
// (`opstream jobs` draws the step tree, `opstream cancel` reverts or says why not).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/domain/errors.ts';
import { uniqueId } from './helpers/agent.ts';
import { startStack, type TestStack } from './helpers/stack.ts';

const run = promisify(execFile);
let stack: TestStack;

beforeAll(async () => {
  // Migrations copy memory for ~2 s, so one can be cancelled from a separate process.
  const quick = { steps: 2, stepMs: 5 };
  const slow = { steps: 250, stepMs: 20 };
  const timings = { prepare: quick, powerUp: quick, pause: quick, resume: quick, prepareMigration: quick, abortCreate: quick, cancelMigration: quick };
  // (`stepMs` would override every tick, so the slow works are given in full.)
  stack = await startStack({ sim: { timings: { ...timings, copyMemory: slow, powerDown: slow }, defaultTiming: quick } });
});
afterAll(async () => {
  await stack?.stop();
});

const cli = (...args: string[]) =>
  run('node', ['bin/opstream.js', ...args, '--url', stack.agent.api.url, '--token', stack.agent.credentials.operatorToken]).then(
    ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );

async function upVm(): Promise<string> {
  const vmId = uniqueId('surf');
  const { jobId } = await stack.host.vm.create(vmId);
  expect((await stack.host.waitForJob(jobId, 10_000)).status).toBe('done');
  return vmId;
}

describe('client library', () => {
  it('host.jobs.get/list/cancel/delete and waitForJob', async () => {
    const vmId = await upVm();
    const { jobId, taskId } = await stack.host.vm.migrate(vmId, 'h2');
    expect(jobId).toBe(taskId);
    expect((await stack.host.jobs.get(jobId)).status).toBe('running');
    expect((await stack.host.jobs.list({ status: 'running' })).map((job) => job.jobId)).toContain(jobId);
    await expect(stack.host.jobs.delete(jobId)).rejects.toMatchObject({ code: ErrorCodes.JobNotDone });
    expect(await stack.host.jobs.cancel(jobId)).toMatchObject({ status: 'aborting', policy: 'revert' });
    const ended = await stack.host.waitForJob(jobId, 10_000);
    expect(ended).toMatchObject({ status: 'aborted', error: [910, expect.stringMatching(/cancelled by request/)] });
    expect((await stack.host.vm.getInfo(vmId)).status).toBe('Up');
    await stack.host.jobs.delete(jobId);
    expect((await stack.host.jobs.list({ jobIds: [jobId] })).length).toBe(0);
  });
});

describe('composite jobs from a client', () => {
  it('job alerts reach Host.subscribe(vdsm.Job.*); Task.cancel of a step cancels its job', async () => {
    await upVm();
    await stack.host.subscribe('vdsm.Job.*');
    const { jobId } = await stack.host.call<{ jobId: string }>('Host.prepareForMaintenance', { dstHost: 'h5', concurrency: 1 });
    const first = await stack.host.waitForEvent(`vdsm.Job.${jobId}`, 5_000);
    expect(first).toMatchObject({ jobId, task: { id: jobId, status: 'running' }, operationInfo: { operationDescription: 'Running' } });
    let step: { taskId: string | null } | undefined;
    while (!step) {
      const info = await stack.host.jobs.get(jobId);
      step = info.steps.find((candidate) => candidate.type === 'command' && candidate.status === 'running' && candidate.taskId);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const answer = await stack.host.call('Task.cancel', { taskId: step.taskId });
    expect(answer).toMatchObject({ taskId: step.taskId, jobId, status: 'aborting' });
    const ended = await stack.host.waitForJob(jobId, 20_000);
    expect(ended.status).toBe('aborted');
    expect(ended.steps.filter((candidate) => candidate.type === 'command').map((candidate) => candidate.status)).toContain('aborted');
  });
});

describe('cancel through the real gluster driver', () => {
  it('a cancelled rebalance is stopped in gluster; the volume stays Started', async () => {
    const volumeName = uniqueId('vol');
    const create = await stack.host.call<{ jobId: string }>('GlusterVolume.create', { volumeName, bricks: ['h1:/b1', 'h2:/b2'] });
    await stack.host.waitForJob(create.jobId, 10_000);
    await stack.host.waitForJob((await stack.host.call<{ jobId: string }>('GlusterVolume.start', { volumeName })).jobId, 10_000);
    const { jobId } = await stack.host.call<{ jobId: string }>('GlusterVolume.rebalanceStart', { volumeName });
    // The case under test is a rebalance gluster is running: cancel once it has started one.
    while (stack.agent.gluster.rebalanceStatus(volumeName).state !== 'in progress') await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await stack.host.jobs.cancel(jobId)).toMatchObject({ status: 'aborting', policy: 'revert' });
    const ended = await stack.host.waitForJob(jobId, 10_000);
    expect(ended).toMatchObject({ status: 'aborted', error: [910, expect.stringMatching(/rebalance was stopped/)] });
    expect(stack.agent.gluster.rebalanceStatus(volumeName).state).toBe('stopped');
    const info = await stack.host.call<{ status: string; operationInfo: { extraData: Record<string, unknown> } }>('GlusterVolume.getInfo', { volumeName });
    expect(info).toMatchObject({ status: 'Started', operationInfo: { extraData: { rebalance: 'stopped' } } });
  });
});

describe('command line', () => {
  it('opstream cancel reverts a migration; opstream jobs draws its steps', async () => {
    const vmId = await upVm();
    const { jobId } = await stack.host.vm.migrate(vmId, 'h2');
    const cancelled = await cli('cancel', jobId);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(new RegExp(`job ${jobId} aborting — cancelling`));
    const drawn = await cli('jobs', jobId, '--wait');
    expect(drawn.stdout).toMatch(new RegExp(`${jobId}  VM.migrate  aborted`));
    expect(drawn.stdout).toMatch(/1\. validating\s+done\s+\[##########\] 100%/);
    expect(drawn.stdout).toMatch(/2\. VM.migrate on vdsm\.VM\.\S+\s+aborted/);
    const listed = JSON.parse((await cli('jobs', '--json', '--type', 'VM.migrate')).stdout) as Array<{ jobId: string }>;
    expect(listed.map((job) => job.jobId)).toContain(jobId);
  });

  it('opstream cancel of a refusing state prints the reason and exits 2', async () => {
    const vmId = await upVm();
    const { jobId } = await stack.host.vm.destroy(vmId);
    const refused = await cli('cancel', jobId);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/error 123: .*PoweringDown.*a destroy cannot be undone/);
  });
});
