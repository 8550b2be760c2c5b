import { z } from 'zod';

/** One call that changes an entity. kwargs are redacted before a TaskInfo is built. */
export const TaskInfo = z.object({
  id: z.string().min(1),
  methodName: z.string().min(1),
  kwargs: z.record(z.string(), z.unknown()),
});
export type TaskInfo = z.infer<typeof TaskInfo>;

export const TASK_STATUSES = ['running', 'finished', 'failed', 'cancelled'] as const;
export const TaskStatus = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatus>;
