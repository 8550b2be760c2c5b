// Every mutating call runs as a job: this wraps a write method so that it takes an optional
// caller `jobId` (a UUID: repeating the same call with it returns the first answer and runs nothing
// twice; a different call with it is refused with JobExists) and `flowId` (correlation, carried by
// the task onto every alert of its work), and answers `{taskId, jobId}`.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { Runtime } from '../../actors/runtime.ts';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import { redact } from '../domain/redaction.ts';
import type { MethodSpec } from './method.ts';

export const JobIdParam = z.uuid({ error: 'must be a UUID' });
export const FlowIdParam = z.string().min(1).max(128);

type InFlight = { method: string; kwargs: unknown; answer: Promise<Record<string, unknown>> };
/** Calls with a caller jobId still running, so a concurrent retry waits for the first answer. */
const inFlight = new Map<string, InFlight>();

const normalize = (value: unknown): unknown => JSON.parse(JSON.stringify(value ?? {}));

function sameCall(method: string, kwargs: unknown, recorded: { methodName: string; kwargs: unknown }): boolean {
  return recorded.methodName === method && isDeepStrictEqual(normalize(recorded.kwargs), kwargs);
}

/** The first answer of an earlier call with this jobId, JobExists when it was another call, else undefined. */
async function earlierAnswer(runtime: Runtime, jobId: string, method: string, kwargs: unknown): Promise<Record<string, unknown> | undefined> {
  const running = inFlight.get(jobId);
  if (running) {
    if (running.method !== method || !isDeepStrictEqual(running.kwargs, kwargs)) throw jobExists(jobId, running.method);
    return running.answer;
  }
  await runtime.tasks.ready;
  const record = runtime.tasks.get(jobId);
  if (!record) return undefined;
  if (!sameCall(method, kwargs, record.task)) throw jobExists(jobId, record.task.methodName);
  return { taskId: record.task.id, jobId };
}

function jobExists(jobId: string, method: string): OpstreamError {
  return new OpstreamError(ErrorCodes.JobExists, `job ${jobId} already exists for another call (${method}); use a new jobId`, { jobId, jobType: method });
}

/** `spec` as a job: same params plus `jobId?` and `flowId?`, answering `{taskId, jobId}`. */
export function asJob(spec: MethodSpec): MethodSpec {
  if (spec.access !== 'write') return spec;
  const params = z.looseObject({ jobId: JobIdParam.optional(), flowId: FlowIdParam.optional() }).transform((value, ctx) => {
    const { jobId, flowId, ...rest } = value;
    const parsed = spec.params.safeParse(rest);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
        ctx.addIssue({ code: 'custom', message: `${issue.message}${keys}`, path: issue.path });
      }
      return z.NEVER;
    }
    return { jobId, flowId, params: parsed.data as unknown };
  });
  return {
    ...spec,
    params,
    handler: async ({ jobId, flowId, params: given }: z.infer<typeof params>, context) => {
      const kwargs = normalize(redact(given as Record<string, unknown>));
      if (jobId) {
        const earlier = await earlierAnswer(context.runtime, jobId, spec.name, kwargs);
        if (earlier) return earlier;
      }
      const id = jobId ?? randomUUID();
      const answer = spec
        .handler(given, { ...context, job: { taskId: id, ...(flowId ? { flowId } : {}) } })
        .then((result) => {
          const taskId = (result as { taskId?: string } | undefined)?.taskId ?? id;
          return { ...(result as Record<string, unknown>), taskId, jobId: taskId };
        });
      if (!jobId) return answer;
      inFlight.set(jobId, { method: spec.name, kwargs, answer });
      try {
        return await answer;
      } finally {
        inFlight.delete(jobId);
      }
    },
  } as MethodSpec;
}
