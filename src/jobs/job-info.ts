// What Job.getInfo and Host.getJobs answer: a job with its step tree. A one-entity job is read off
// its task's record (validating, executing — the entity's task — then finalizing); a composite job off its own
// actor's context, with each running step's live progress taken from its task.
import type { TaskRecord, TaskRegistry } from '../../actors/task-registry.ts';
import type { JobContext } from '../../machines/job.ts';
import { JOB_STATUSES, JobInfo, StepInfo, type JobStatus, type StepStatus } from '../domain/job.ts';

export { JobInfo, StepInfo };
import type { TaskStatus } from '../domain/task.ts';


export function jobStatusOf(record: Pick<TaskRecord, 'status' | 'aborting'>): JobStatus {
  const byTask: Record<TaskStatus, JobStatus> = { running: 'running', finished: 'done', failed: 'failed', cancelled: 'aborted' };
  return record.status === 'running' && record.aborting ? 'aborting' : byTask[record.status];
}

const stepStatusOf = (status: JobStatus): StepStatus => (status === 'aborting' ? 'running' : status);

/** A top-level job's info; `composite` is its actor's context when it runs on vdsm.Job.<id>. */
export function jobInfo(record: TaskRecord, tasks: TaskRegistry, composite?: { status: string; context: JobContext }): JobInfo {
  const base = {
    jobId: record.task.id,
    jobType: record.task.methodName,
    startTime: record.startTime,
    endTime: record.endTime,
    correlationId: record.task.flowId ?? null,
    error: record.status === 'running' ? ([0, ''] as [number, string]) : record.lastError,
  };
  if (composite) {
    const { context } = composite;
    const steps: StepInfo[] = context.steps.map((step) => ({
      id: step.id,
      parentStepId: step.parentStepId,
      number: step.number,
      type: step.type,
      description: step.description,
      status: step.status,
      progress: step.status === 'running' && step.taskId ? (tasks.get(step.taskId)?.percentage ?? step.progress) : step.progress,
      alertName: step.command?.alertName ?? null,
      taskId: step.taskId,
      error: step.error,
    }));
    const status = (JOB_STATUSES as readonly string[]).includes(composite.status) ? (composite.status as JobStatus) : jobStatusOf(record);
    return {
      ...base,
      description: context.description,
      status,
      progress: Math.max(0, context.percentage === -1 ? 100 : context.percentage),
      entities: [record.alertName, ...new Set(context.steps.flatMap((step) => (step.command ? [step.command.alertName] : [])))],
      steps,
    };
  }
  const status = jobStatusOf(record);
  const progress = record.status === 'finished' ? 100 : record.percentage;
  return {
    ...base,
    description: `${record.task.methodName} on ${record.alertName}`,
    status,
    progress,
    entities: [record.alertName],
    steps: [
      { id: 'validating', parentStepId: null, number: 1, type: 'validating', description: 'validating', status: 'done', progress: 100, alertName: null, taskId: null, error: [0, ''] },
      {
        id: 'executing',
        parentStepId: null,
        number: 2,
        type: 'executing',
        description: `${record.task.methodName} on ${record.alertName}`,
        status: stepStatusOf(status),
        progress,
        alertName: record.alertName,
        taskId: record.task.id,
        error: base.error,
      },
      // The seed's third step of a command with host tasks: its outcome recorded once the task ended.
      {
        id: 'finalizing',
        parentStepId: null,
        number: 3,
        type: 'finalizing',
        description: 'finalizing',
        status: record.status === 'running' ? 'pending' : 'done',
        progress: record.status === 'running' ? 0 : 100,
        alertName: null,
        taskId: null,
        error: [0, ''],
      },
    ],
  };
}
