// The one retry policy: validated data with defaults, and the delays it gives.
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_POLICY, retryDelayMs, retryPolicy } from '../src/domain/retry-policy.ts';

describe('retryPolicy', () => {
  it('fills in the defaults: 50 ms doubling to at most 2 s, forever', () => {
    expect(DEFAULT_RETRY_POLICY).toEqual({ initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 2_000, maximumAttempts: 0 });
    expect([1, 2, 3, 4, 5, 6, 7, 100].map((retry) => retryDelayMs(DEFAULT_RETRY_POLICY, retry))).toEqual([50, 100, 200, 400, 800, 1_600, 2_000, 2_000]);
  });

  it('counts the first attempt among maximumAttempts', () => {
    const policy = retryPolicy({ initialIntervalMs: 10, backoffCoefficient: 3, maximumAttempts: 3 });
    expect([1, 2, 3].map((retry) => retryDelayMs(policy, retry))).toEqual([10, 30, undefined]);
  });

  it.each([
    [{ initialIntervalMs: 0 }, /initialIntervalMs/],
    [{ backoffCoefficient: 0.5 }, /backoffCoefficient/],
    [{ maximumAttempts: -1 }, /maximumAttempts/],
    [{ initialIntervalMs: 500, maximumIntervalMs: 100 }, /maximumIntervalMs must not be less than initialIntervalMs/],
    [{ initialIntervalMs: 10, jitter: 0.1 } as never, /unrecognized key/i],
  ])('refuses %j, naming the field', (input, message) => {
    expect(() => retryPolicy(input)).toThrow(message);
  });
});
