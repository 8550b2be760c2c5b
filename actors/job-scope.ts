// The job a call runs in, handed from the API's job layer to Runtime.call without threading it
// through every method: the task gets the job's id (jobId = taskId for a one-entity job, a
// derived id for a composite job's step) and the caller's flowId.
import { AsyncLocalStorage } from 'node:async_hooks';

export type JobScope = {
  /** The id the next task gets; used once, so a second call in one scope gets a fresh id. */
  taskId: string;
  /** Set for steps of a composite job: the parent job. */
  jobId?: string;
  flowId?: string;
  used?: boolean;
};

export const jobScope = new AsyncLocalStorage<JobScope>();

/** Takes the scope's task id (once) and correlation for a new task. */
export function claimTaskIdentity(): { id?: string; jobId?: string; flowId?: string } {
  const scope = jobScope.getStore();
  if (!scope) return {};
  const identity = { id: scope.used ? undefined : scope.taskId, jobId: scope.jobId, flowId: scope.flowId };
  scope.used = true;
  return identity;
}
