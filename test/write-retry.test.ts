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
import { ErrorCodes } from '../src/domain/errors.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { startTestAgent, uniqueId } from './helpers/agent.ts';
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

/** A logger that also tells the test when the runtime starts retrying an append. */
function watchingLogger(): { logger: Logger; retrying: Promise<void> } {
  const base = createLogger('write-retry-test');
  let signal: () => void = () => undefined;
  const retrying = new Promise<void>((resolve) => (signal = resolve));
  const logger: Logger = {
    ...base,
    warn: (message, fields) => {
      if (message.startsWith('append failed; retrying until the stream is back')) signal();
      base.warn(message, fields);
    },
  };
  return { logger, retrying };
}

describe('queued calls have a deadline', () => {
  it('a call queued behind a driver event waiting out an outage answers Unavailable and never runs', async () => {
    const { logger, retrying } = watchingLogger();
    const agent = await startTestAgent(server.url, { stepMs: 100 }, {
      logger,
      callDeadlineMs: 300,
      storeRetry: { initialIntervalMs: 20, maximumIntervalMs: 100 },
    });
    try {
      const id = uniqueId();
      const ref = { kind: EntityKinds.VM, id };
      const create = await agent.runtime.call(ref, 'VM.create', { vmId: id }, (task: TaskInfo) => ({ type: 'CREATE', task, params: task.kwargs }));

      await server.kill();
      // The create's next progress report cannot be stored: the actor retries it until it is.
      await retrying;
      const destroy = agent.runtime.call(ref, 'VM.destroy', { vmId: id }, (task: TaskInfo) => ({ type: 'DESTROY', task }));
      const cancel = agent.runtime.cancelTask(create.taskId);
      await expect(destroy).rejects.toMatchObject({ code: ErrorCodes.Unavailable, message: expect.stringMatching(/will not run/) });
      await expect(cancel).rejects.toMatchObject({ code: ErrorCodes.Unavailable });

      await server.revive();
      // The create goes on once the stream is back: the dropped calls do not run behind it.
      const actor = await agent.runtime.existing(ref);
      await expect.poll(() => actor.view().status, { timeout: 20_000, interval: 50 }).toBe('Up');
      await actor.settle();
      const stored: Array<{ event: string; method?: string }> = [];
      for await (const { alert } of agent.runtime.alertLog.alerts(actor.subject)) stored.push({ event: alert.event.type, method: alert.task?.methodName });
      expect(stored.at(-1)?.event).toBe('WORK_DONE');
      expect(stored.map(({ event }) => event)).not.toContain('DESTROY');
      expect(stored.map(({ event }) => event)).not.toContain('CANCEL');
      expect(stored.map(({ method }) => method)).not.toContain('VM.destroy');
    } finally {
      await agent.close();
    }
  }, 60_000);

  it('the runtime refuses a callDeadlineMs that is not a positive whole number', async () => {
    const nc = await connectNats(server.url, 'deadline-test');
    try {
      const stream = await ensureAlertStream(nc);
      await expect(Runtime.start({ nc, stream, driver: new SimulatedDriver(), callDeadlineMs: 0 })).rejects.toThrow(/callDeadlineMs 0/);
    } finally {
      await nc.close();
    }
  });
});
