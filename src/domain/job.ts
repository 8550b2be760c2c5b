// Jobs as clients see them: VDSM's host-job status words and the shape Job.getInfo and
// Host.getJobs answer. Vocabulary only, so the client library can name it without the runtime.
import { z } from 'zod';

/** VDSM's host-job words. */
export const JOB_STATUSES = ['pending', 'running', 'done', 'aborting', 'aborted', 'failed'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const STEP_STATUSES = ['pending', 'running', 'done', 'failed', 'aborted', 'skipped'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

const ErrorTuple = z.tuple([z.number().int(), z.string()]);

export const StepInfo = z.object({
  id: z.string(),
  parentStepId: z.string().nullable(),
  number: z.number().int(),
  type: z.string(),
  description: z.string(),
  status: z.enum(STEP_STATUSES),
  progress: z.number().int(),
  /** The entity the step's task runs on, and the task, once started. */
  alertName: z.string().nullable(),
  taskId: z.string().nullable(),
  error: ErrorTuple,
});
export type StepInfo = z.infer<typeof StepInfo>;

export const JobInfo = z.object({
  jobId: z.string(),
  jobType: z.string(),
  description: z.string(),
  status: z.enum(JOB_STATUSES),
  progress: z.number().int(),
  error: ErrorTuple,
  startTime: z.string(),
  endTime: z.string().nullable(),
  /** The caller's flowId. */
  correlationId: z.string().nullable(),
  entities: z.array(z.string()),
  steps: z.array(StepInfo),
});
export type JobInfo = z.infer<typeof JobInfo>;
