// How to retry: one validated policy object instead of a backoff formula copied per call site
// (the shape of Temporal's RetryPolicy). The client's reconnect and resubscribe use it; it lives in
// the domain so the runtime's retries can adopt the same object.
import { z } from 'zod';

export const RetryPolicy = z
  .strictObject({
    /** Delay before the first retry. */
    initialIntervalMs: z.number().int().min(1).default(50),
    /** Each delay is the previous one times this. */
    backoffCoefficient: z.number().min(1).max(100).default(2),
    /** No delay is longer than this. */
    maximumIntervalMs: z.number().int().min(1).default(2_000),
    /** Attempts in all, the first included; 0 = no limit. */
    maximumAttempts: z.number().int().min(0).default(0),
  })
  .refine((policy) => policy.maximumIntervalMs >= policy.initialIntervalMs, {
    error: 'maximumIntervalMs must not be less than initialIntervalMs',
    path: ['maximumIntervalMs'],
  });
export type RetryPolicy = z.output<typeof RetryPolicy>;
/** What a caller writes: every field optional, defaults filled in by `retryPolicy`. */
export type RetryPolicyInput = z.input<typeof RetryPolicy>;

/** The defaults: 50 ms, doubling, at most 2 s apart, forever. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = RetryPolicy.parse({});

/**
 * Validates a policy and fills in the defaults; a bad one is an error naming the field.
 *
 * @example
 * const policy = retryPolicy({ initialIntervalMs: 100, maximumAttempts: 5 });
 */
export function retryPolicy(input: RetryPolicyInput = {}): RetryPolicy {
  const parsed = RetryPolicy.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new RangeError(`invalid retry policy: ${issue?.path.join('.') || 'policy'}: ${issue?.message ?? 'invalid'}`);
}

/**
 * How long to wait before retry number `retry` (1 = the first retry, after the first attempt
 * failed), or undefined when the policy has no attempts left.
 */
export function retryDelayMs(policy: RetryPolicy, retry: number): number | undefined {
  if (policy.maximumAttempts > 0 && retry >= policy.maximumAttempts) return undefined;
  const delay = policy.initialIntervalMs * policy.backoffCoefficient ** Math.max(0, retry - 1);
  return Math.min(policy.maximumIntervalMs, delay);
}
