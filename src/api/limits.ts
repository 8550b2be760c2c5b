import type { z } from 'zod';

/** Largest request a connection may send; bigger ones are refused before parsing. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Largest kwargs a task may carry: they are stored in every alert of the task. */
export const MAX_KWARGS_BYTES = 16 * 1024;

/** A zod refinement: kwargs must serialize within MAX_KWARGS_BYTES. */
export function boundedKwargs(value: Record<string, unknown>, context: z.RefinementCtx): void {
  const size = Buffer.byteLength(JSON.stringify(value));
  if (size > MAX_KWARGS_BYTES) {
    context.addIssue({ code: 'custom', message: `params are ${size} bytes; the limit is ${MAX_KWARGS_BYTES}` });
  }
}
