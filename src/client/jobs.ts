// Jobs from the client's side: look them up, list, cancel, delete, and wait for one to end.
import type { JobInfo } from '../domain/job.ts';
import type { JobStatus } from '../domain/job.ts';
import { TimeoutError } from './errors.ts';

export type JobFilter = { jobIds?: string[]; jobType?: string; status?: JobStatus; correlationId?: string };
export type CancelAnswer = { jobId: string; status: JobStatus; policy: 'revert' | 'rollForward'; reason: string };

export type JobsApi = {
  get(jobId: string): Promise<JobInfo>;
  list(filter?: JobFilter): Promise<JobInfo[]>;
  /** Cancels as the running state declares; rejects with CancelRefused (123) or JobNotActive (121). */
  cancel(jobId: string): Promise<CancelAnswer>;
  /** Forgets an ended job; rejects with JobNotDone (122) while it runs. */
  delete(jobId: string): Promise<{ jobId: string; deleted: true }>;
};

type Call = <Result>(method: string, params: Record<string, unknown>) => Promise<Result>;

export function jobsApi(call: Call): JobsApi {
  return {
    get: (jobId) => call('Job.getInfo', { jobId }),
    list: (filter = {}) => call('Host.getJobs', filter),
    cancel: (jobId) => call('Job.cancel', { jobId }),
    delete: (jobId) => call('Job.delete', { jobId }),
  };
}

const ENDED: readonly JobStatus[] = ['done', 'failed', 'aborted'];

/**
 * Resolves with the job once it ended (done, failed or aborted); rejects with TimeoutError after
 * `timeoutMs`. It asks Job.getInfo, so it needs no subscription and survives reconnects.
 */
export async function waitForJob(jobs: JobsApi, jobId: string, timeoutMs = 60_000): Promise<JobInfo> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt += 1) {
    const info = await jobs.get(jobId);
    if (ENDED.includes(info.status)) return info;
    if (Date.now() >= deadline) throw new TimeoutError(`job ${jobId} is still ${info.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, 20 * 2 ** Math.min(attempt, 4), Math.max(1, deadline - Date.now()))));
  }
}
