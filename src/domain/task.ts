// TaskInfo (one call that changes an entity, kwargs redacted) and the statuses a task goes through.
import { z } from 'zod';

/** One call that changes an entity. kwargs are redacted before a TaskInfo is built. */
export const TaskInfo = z.object({
  id: z.string().min(1),
  methodName: z.string().min(1),
  kwargs: z.record(z.string(), z.unknown()),
  /** The job the task belongs to when it is a step of a composite job (else the job is the task). */
  jobId: z.string().min(1).optional(),
  /** The caller's correlation id (VDSM's flow_id), carried by every alert of the task's work. */
  flowId: z.string().min(1).optional(),
});
export type TaskInfo = z.infer<typeof TaskInfo>;

export const TASK_STATUSES = ['running', 'finished', 'failed', 'cancelled'] as const;
export const TaskStatus = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatus>;
