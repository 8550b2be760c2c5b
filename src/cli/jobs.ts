// `opstream jobs [jobId]`: jobs with their step tree and progress; `opstream cancel <jobId>`.
import type { JobInfo, StepInfo } from '../jobs/job-info.ts';
import type { JobFilter } from '../client/jobs.ts';
import { withAgent, type AgentAccess } from './agent-access.ts';

export type JobsOptions = AgentAccess & { json: boolean; status?: JobFilter['status']; type?: string; flow?: string; wait: boolean };

export async function jobs(jobId: string | undefined, options: JobsOptions): Promise<void> {
  const found = await withAgent(options, async (client) => {
    if (!jobId) return client.jobs.list({ status: options.status, jobType: options.type, correlationId: options.flow });
    return [options.wait ? await client.waitForJob(jobId) : await client.jobs.get(jobId)];
  });
  if (options.json) {
    console.log(JSON.stringify(jobId ? found[0] : found, null, 2));
    return;
  }
  if (found.length === 0) console.log('no jobs');
  for (const job of found) console.log(drawJob(job));
}

export async function cancel(jobId: string, options: AgentAccess): Promise<void> {
  const answer = await withAgent(options, (client) => client.jobs.cancel(jobId));
  const what = answer.policy === 'revert' ? 'cancelling: the operation is being reverted' : `not reverted: ${answer.reason}`;
  console.log(`job ${jobId} ${answer.status} — ${what}`);
}

/** A job and its step tree, one line per step, children indented under their parent. */
export function drawJob(job: JobInfo): string {
  const error = job.error[0] === 0 ? '' : `  error ${job.error[0]}: ${job.error[1]}`;
  const flow = job.correlationId ? `  flow ${job.correlationId}` : '';
  const lines = [`${job.jobId}  ${job.jobType}  ${job.status} ${bar(job.progress)}${flow}${error}`, `  ${job.description}`];
  const children = (parent: string | null): StepInfo[] => job.steps.filter((step) => step.parentStepId === parent);
  const draw = (step: StepInfo, depth: number) => {
    const stepError = step.error[0] === 0 ? '' : `  error ${step.error[0]}: ${step.error[1]}`;
    lines.push(`${'  '.repeat(depth)}${step.number}. ${step.description.padEnd(44 - 2 * depth)} ${step.status.padEnd(8)} ${bar(step.progress)}${stepError}`);
    for (const child of children(step.id)) draw(child, depth + 1);
  };
  for (const root of children(null)) draw(root, 1);
  return lines.join('\n');
}

function bar(progress: number): string {
  const clamped = Math.max(0, Math.min(100, progress));
  const filled = Math.round(clamped / 10);
  return `[${'#'.repeat(filled)}${'.'.repeat(10 - filled)}] ${String(clamped).padStart(3)}%`;
}
