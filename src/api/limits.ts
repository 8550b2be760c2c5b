// The bounds every request is held to: its size, a batch's length, how deep its params nest, and
// how large the kwargs a task carries may be.
import type { z } from 'zod';

/** Largest request a connection may send; bigger ones are refused before parsing. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Most requests one JSON-RPC batch may hold: each may start an operation. */
export const MAX_BATCH_REQUESTS = 64;
/** Deepest nesting of objects and arrays in params; nothing the API takes needs more. */
export const MAX_PARAMS_DEPTH = 16;

/** How deep `value` nests, counted without recursion (a hostile 100,000-deep array must not blow the stack). */
export function nestingDepth(value: unknown, stopAt = Infinity): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop() as [unknown, number];
    if (item === null || typeof item !== 'object') continue;
    const here = depth + 1;
    if (here > deepest) deepest = here;
    if (deepest > stopAt) return deepest;
    for (const child of Object.values(item)) stack.push([child, here]);
  }
  return deepest;
}

/** Largest kwargs a task may carry: they are stored in every alert of the task. */
export const MAX_KWARGS_BYTES = 16 * 1024;

/** A zod refinement: kwargs must serialize within MAX_KWARGS_BYTES. */
export function boundedKwargs(value: Record<string, unknown>, context: z.RefinementCtx): void {
  const size = Buffer.byteLength(JSON.stringify(value));
  if (size > MAX_KWARGS_BYTES) {
    context.addIssue({ code: 'custom', message: `params are ${size} bytes; the limit is ${MAX_KWARGS_BYTES}` });
  }
}
