// The composite job machine on its own: the step tree it records, the status it derives, and what
// a cancel does to steps not yet started. Pure: no server.
import { describe, expect, it } from 'vitest';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { CANCELLED_CODE, operationInfoOf, stateMeta } from '../machines/entity.ts';
import { jobMachine, type JobEvent, type PlannedCommand } from '../machines/job.ts';
import { endedStatus, taskChange } from '../actors/entity-snapshot.ts';
import { isOperationComplete, OperationInfo } from '../src/domain/operation-info.ts';

type Snapshot = SnapshotFrom<typeof jobMachine>;
const migrate = (vmId: string, phase = 1): PlannedCommand => ({
  method: 'VM.migrate', alertName: `vdsm.VM.${vmId}`, params: { vmId, dstHost: 'h2' }, description: `migrating VM ${vmId}`, phase,
});
const start = (commands: PlannedCommand[]): JobEvent => ({
  type: 'START', task: { id: 'job1', methodName: 'Host.prepareForMaintenance', kwargs: {} }, description: 'maintenance', concurrency: 1, commands,
});

function run(events: JobEvent[], from?: Snapshot): Snapshot {
  let snapshot = from ?? initialTransition(jobMachine, { id: 'job1' })[0];
  for (const event of events) {
    expect(snapshot.can(event), `${JSON.stringify(snapshot.value)} should take ${event.type}`).toBe(true);
    snapshot = transition(jobMachine, snapshot, event)[0];
  }
  return snapshot;
}
const info = (snapshot: Snapshot) => OperationInfo.parse(operationInfoOf(stateMeta(snapshot), snapshot.context));
const statuses = (snapshot: Snapshot) => snapshot.context.steps.map((step) => `${step.id}:${step.status}`);

describe('job machine', () => {
  it('records steps and ends done once every command step is done; stage counts steps', () => {
    const running = run([start([migrate('a'), migrate('b')]), { type: 'STEP_STARTED', stepId: 'step-1', taskId: 't1' }]);
    expect(running.value).toBe('running');
    expect(statuses(running)).toEqual(['validating:done', 'executing:running', 'step-1:running', 'step-2:pending']);
    expect(info(running).stage).toEqual([1, 3]);
    const half = run([{ type: 'STEP_ENDED', stepId: 'step-1', status: 'done' }], running);
    expect(info(half)).toMatchObject({ stage: [2, 3], percentage: 50 });
    const done = run([{ type: 'STEP_STARTED', stepId: 'step-2', taskId: 't2' }, { type: 'STEP_ENDED', stepId: 'step-2', status: 'done' }], half);
    expect(done.value).toBe('done');
    expect(isOperationComplete(info(done))).toBe(true);
    expect(taskChange(running.context.task, done.context)).toMatchObject({ taskStatus: 'finished' });
  });

  it('a job with nothing to do is done at once', () => {
    expect(run([start([])]).value).toBe('done');
  });

  it('fails when a step failed, naming it', () => {
    const failed = run([
      start([migrate('a')]),
      { type: 'STEP_STARTED', stepId: 'step-1', taskId: 't1' },
      { type: 'STEP_ENDED', stepId: 'step-1', status: 'failed', error: [101, 'VM a is Down'] },
    ]);
    expect(failed.value).toBe('failed');
    expect(failed.context.lastError).toEqual([101, 'step 3 (migrating VM a) failed: VM a is Down']);
  });

  it('a cancel skips pending steps in the same transition, waits for running ones, ends aborted', () => {
    const aborting = run([
      start([migrate('a'), migrate('b'), migrate('c')]),
      { type: 'STEP_STARTED', stepId: 'step-1', taskId: 't1' },
      { type: 'STEP_ENDED', stepId: 'step-1', status: 'done' },
      { type: 'STEP_STARTED', stepId: 'step-2', taskId: 't2' },
      { type: 'CANCEL' },
    ]);
    expect(aborting.value).toBe('aborting');
    expect(statuses(aborting)).toEqual(['validating:done', 'executing:running', 'step-1:done', 'step-2:running', 'step-3:skipped']);
    expect(aborting.can({ type: 'CANCEL' })).toBe(false);
    const aborted = run([{ type: 'STEP_ENDED', stepId: 'step-2', status: 'aborted' }], aborting);
    expect(aborted.value).toBe('aborted');
    expect(aborted.context.lastError[0]).toBe(CANCELLED_CODE);
    expect(endedStatus(aborted.context.lastError[0])).toBe('cancelled');
    expect(aborted.context.steps.find((step) => step.id === 'executing')?.status).toBe('aborted');
  });

  it('deletes only ended jobs; its context survives a JSON round trip', () => {
    const done = run([start([])]);
    const restored = jobMachine.resolveState(JSON.parse(JSON.stringify(jobMachine.getPersistedSnapshot(done))));
    expect(restored.context).toEqual(done.context);
    expect(run([{ type: 'DELETE' }], restored).value).toBe('deleted');
    expect(run([start([migrate('a')])]).can({ type: 'DELETE' })).toBe(false);
  });
});
