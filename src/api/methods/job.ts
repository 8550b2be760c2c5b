// Jobs and tasks: looking them up (also after they ended, within the agent's retention),
// cancelling them, deleting ended jobs, and the composite Host.prepareForMaintenance.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Runtime } from '../../../actors/runtime.ts';
import type { TaskRecord } from '../../../actors/task-registry.ts';
import { JOB_STATUSES, type JobContext, type PlannedCommand } from '../../../machines/job.ts';
import { ErrorCodes, OpstreamError } from '../../domain/errors.ts';
import { alertSubject, EntityId, EntityKinds } from '../../domain/subjects.ts';
import { jobInfo, jobStatusOf, type JobInfo } from '../../jobs/job-info.ts';
import { defineMethod } from '../method.ts';

const Id = z.string().min(1).max(200);

/** A top-level job (not a composite job's step) that exists and was not deleted. */
async function jobRecord(runtime: Runtime, jobId: string): Promise<TaskRecord> {
  await runtime.tasks.ready;
  const record = runtime.tasks.get(jobId);
  if (!record || record.deleted || (record.task.jobId && record.task.jobId !== jobId)) {
    throw new OpstreamError(ErrorCodes.NoSuchJob, `no job ${jobId} (ended jobs are kept ${Math.round(runtime.tasks.retentionMs / 60_000)} min)`);
  }
  return record;
}

async function describeJob(runtime: Runtime, record: TaskRecord): Promise<JobInfo> {
  if (!record.alertName.startsWith(`${alertSubject(EntityKinds.Job, '')}`)) return jobInfo(record, runtime.tasks);
  const actor = await runtime.jobActor(record.task.id);
  if (!actor) return jobInfo(record, runtime.tasks);
  return jobInfo(record, runtime.tasks, { status: actor.view().status, context: actor.snapshot.context as JobContext });
}

async function cancelJob(runtime: Runtime, jobId: string): Promise<{ jobId: string; status: string; policy: string; reason: string }> {
  const record = await jobRecord(runtime, jobId);
  const status = jobStatusOf(record);
  if (status === 'aborting') return { jobId, status, policy: 'revert', reason: 'the job is already being cancelled' };
  if (record.status !== 'running') throw new OpstreamError(ErrorCodes.JobNotActive, `job ${jobId} already ended (${status}); nothing to cancel`);
  const outcome = await runtime.cancelTask(jobId);
  return { jobId, status: outcome.policy === 'revert' ? 'aborting' : 'running', policy: outcome.policy, reason: outcome.reason };
}

export const jobMethods = [
  defineMethod({
    name: 'Job.getInfo',
    access: 'read',
    params: z.strictObject({ jobId: Id }),
    handler: async ({ jobId }, { runtime }) => describeJob(runtime, await jobRecord(runtime, jobId)),
  }),
  defineMethod({
    name: 'Host.getJobs',
    access: 'read',
    params: z.strictObject({
      jobIds: z.array(Id).max(1000).optional(),
      jobType: z.string().optional(),
      status: z.enum(JOB_STATUSES).optional(),
      correlationId: z.string().optional(),
    }),
    handler: async ({ jobIds, jobType, status, correlationId }, { runtime }) => {
      await runtime.tasks.ready;
      const wanted = jobIds && new Set(jobIds);
      const records = runtime.tasks
        .list()
        .filter((record) => !record.deleted && (!record.task.jobId || record.task.jobId === record.task.id))
        .filter((record) => (!wanted || wanted.has(record.task.id)) && (!jobType || record.task.methodName === jobType))
        .filter((record) => !correlationId || record.task.flowId === correlationId);
      const jobs = await Promise.all(records.map((record) => describeJob(runtime, record)));
      return jobs.filter((job) => !status || job.status === status).sort((a, b) => a.startTime.localeCompare(b.startTime));
    },
  }),
  defineMethod({
    name: 'Job.cancel',
    access: 'write',
    params: z.strictObject({ jobId: Id }),
    handler: async ({ jobId }, { runtime }) => cancelJob(runtime, jobId),
  }),
  defineMethod({
    name: 'Task.cancel',
    access: 'write',
    params: z.strictObject({ taskId: Id }),
    // A task is cancelled through its job: a composite job's step cancels the whole job.
    handler: async ({ taskId }, { runtime }) => {
      await runtime.tasks.ready;
      const record = runtime.tasks.get(taskId);
      if (!record) throw new OpstreamError(ErrorCodes.NoSuchJob, `no task ${taskId}`);
      return { taskId, ...(await cancelJob(runtime, record.task.jobId ?? taskId)) };
    },
  }),
  defineMethod({
    name: 'Job.delete',
    access: 'write',
    params: z.strictObject({ jobId: Id }),
    handler: async ({ jobId }, { runtime }) => {
      const record = await jobRecord(runtime, jobId);
      if (record.status === 'running') throw new OpstreamError(ErrorCodes.JobNotDone, `job ${jobId} is ${jobStatusOf(record)}; cancel it or wait until it ends`);
      const actor = await runtime.jobActor(jobId);
      if (actor) await actor.request({ type: 'DELETE' });
      runtime.tasks.markDeleted(jobId);
      return { jobId, deleted: true };
    },
  }),
  defineMethod({
    name: 'Task.getInfo',
    access: 'read',
    params: z.strictObject({ taskId: Id }),
    handler: async ({ taskId }, { runtime }) => {
      await runtime.tasks.ready;
      const record = runtime.tasks.get(taskId);
      if (!record) throw new OpstreamError(ErrorCodes.NoSuchJob, `no task ${taskId} within the last ${Math.round(runtime.tasks.retentionMs / 60_000)} min`);
      const { task } = record;
      return {
        taskId,
        methodName: task.methodName,
        kwargs: task.kwargs,
        jobId: task.jobId ?? task.id,
        flowId: task.flowId ?? null,
        alertName: record.alertName,
        status: record.status,
        aborting: record.aborting,
        percentage: record.percentage,
        lastError: record.lastError,
        startTime: record.startTime,
        endTime: record.endTime,
      };
    },
  }),
  defineMethod({
    name: 'Host.prepareForMaintenance',
    access: 'write',
    params: z.strictObject({
      dstHost: z.string().min(1).max(255),
      concurrency: z.number().int().min(1).max(32).default(2),
      /** The host to empty (the call goes to its agent); default the agent that got the call. */
      hostId: EntityId.optional(),
    }),
    // One job: migrate every running VM of this host to dstHost (at most `concurrency` at once),
    // then disconnect its storage connections; each internal command is a child step. Other
    // hosts' entities, mirrored here, are theirs to move.
    handler: async ({ dstHost, concurrency }, { runtime, job }) => {
      const up = runtime.entitiesOf(EntityKinds.VM).filter((actor) => actor.owned && actor.view().status === 'Up');
      const connected = runtime.entitiesOf(EntityKinds.StorageConnection).filter((actor) => actor.owned && actor.view().status === 'Connected');
      const commands: PlannedCommand[] = [
        ...up.map((actor) => ({
          method: 'VM.migrate',
          alertName: actor.subject,
          params: { vmId: actor.ref.id, dstHost },
          description: `migrating VM ${actor.ref.id} to ${dstHost}`,
          phase: 1,
        })),
        ...connected.map((actor) => ({
          method: 'StorageConnection.disconnect',
          alertName: actor.subject,
          params: { connectionId: actor.ref.id },
          description: `disconnecting storage connection ${actor.ref.id}`,
          phase: 2,
        })),
      ];
      const jobId = job?.taskId ?? randomUUID();
      const description = `prepare for maintenance: migrate ${up.length} VM(s) to ${dstHost}, then disconnect ${connected.length} storage connection(s)`;
      await runtime.call({ kind: EntityKinds.Job, id: jobId }, 'Host.prepareForMaintenance', { dstHost, concurrency }, (task) => ({
        type: 'START',
        task,
        description,
        concurrency,
        commands,
      }), job);
      return { taskId: jobId };
    },
  }),
];
