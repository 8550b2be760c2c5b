// The job a call runs as, handed from the API's job layer (and the job runner) to Runtime.call:
// the task gets the job's id (jobId = taskId for a one-entity job, a derived id for a composite
// job's step) and the caller's flowId. Passed as an argument, not an AsyncLocalStorage: on Node 20
// a store once used turns on promise hooks for the whole process, and every call through the API
// uses one — 5–10% of the write path's CPU, paid by every call with or without a job.

export type JobScope = {
  /** The id the next task gets; used once, so a second call in one scope gets a fresh id. */
  taskId: string;
  /** Set for steps of a composite job: the parent job. */
  jobId?: string;
  flowId?: string;
  used?: boolean;
};

/** Takes the scope's task id (once) and correlation for a new task. */
export function claimTaskIdentity(scope: JobScope | undefined): { id?: string; jobId?: string; flowId?: string } {
  if (!scope) return {};
  const identity = { id: scope.used ? undefined : scope.taskId, jobId: scope.jobId, flowId: scope.flowId };
  scope.used = true;
  return identity;
}
