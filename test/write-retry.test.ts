// The runtime's waits on the stream: driver events retried until stored follow one validated retry
// policy (src/domain/retry-policy.ts, the one the client uses), and a call queued behind such an
// event has a deadline — when the stream is away for longer, the call is answered Unavailable and
// never runs later, after its client gave up.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../actors/runtime.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

const ROOT = new URL('..', import.meta.url).pathname;

let server: NatsTestServer;
beforeAll(async () => {
  server = await NatsTestServer.start();
});
afterAll(async () => {
  await server?.stop();
});

describe('one retry policy', () => {
  it('the runtime refuses a bad storeRetry policy, naming the field', async () => {
    const nc = await connectNats(server.url, 'retry-policy-test');
    try {
      const stream = await ensureAlertStream(nc);
      const driver = new SimulatedDriver({ stepMs: 5 });
      await expect(Runtime.start({ nc, stream, driver, storeRetry: { initialIntervalMs: 0 } })).rejects.toThrow(/storeRetry.*initialIntervalMs|initialIntervalMs/);
      await expect(Runtime.start({ nc, stream, driver, storeRetry: { maximumAttempts: 3 } })).rejects.toThrow(/storeRetry: maximumAttempts/);
    } finally {
      await nc.close();
    }
  });

  it('no runtime module computes its own backoff', () => {
    const offenders = readdirSync(join(ROOT, 'actors'), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .filter((file) => /\d\s*\*\s*\d+\s*\*\*|\*\*\s*Math\.min\(attempt/.test(readFileSync(join(ROOT, 'actors', file), 'utf8')));
    expect(offenders, 'use retryDelayMs with a RetryPolicy').toEqual([]);
  });
});
