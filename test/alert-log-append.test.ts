// The append pipeline of the alert log: appends of many entities asked for in one turn of the
// event loop go out together, yet each keeps its own guard, its own dedupe id and its own answer.
import { randomBytes } from 'node:crypto';
import { initialTransition } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertLog } from '../actors/alert-log.ts';
import { buildAlert } from '../actors/alert-builder.ts';
import { nextSnapshot } from '../actors/pure-transition.ts';
import { MACHINES } from '../machines/index.ts';
import type { Alert } from '../src/domain/alert.ts';
import { ErrorCodes, OpstreamError } from '../src/domain/errors.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { SEAL_HEADER, historySeal } from '../src/security/history-seal.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { startTcpProxy } from './helpers/tcp-proxy.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { errors, type NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';

/** A VM's first alert (its create), as the runtime would build it. */
function createAlert(vmId: string): Alert {
  const definition = MACHINES[EntityKinds.VM];
  const before = initialTransition(definition.machine, { id: vmId })[0];
  const event = { type: 'CREATE', task: { id: `${vmId}-t0`, methodName: 'VM.create', kwargs: { vmId } }, params: { memoryMiB: 512 } } as const;
  const next = nextSnapshot(definition.machine, before, event);
  return buildAlert({ definition, subject: `vdsm.VM.${vmId}`, before, next, event, revision: 1, time: new Date() });
}

describe('alert log appends', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let log: AlertLog;
  const seal = historySeal(randomBytes(32));

  beforeAll(async () => {
    server = await NatsTestServer.start();
    nc = await connectNats(server.url, 'append-test');
    const stream = await ensureAlertStream(nc);
    log = await AlertLog.open(nc, stream, seal);
  });

  afterAll(async () => {
    await nc.drain();
    await server.stop();
  });

  it('lands appends of many entities sent in one turn, each under its own guard, and refuses only the stale one', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `batch-${i}`);
    await log.append(createAlert('batch-stale'), 0, 'batch-stale:1');
    // All asked for before anything is awaited: one batch. The stale guard is in the middle of it.
    const appends = ids.map((id) => log.append(createAlert(id), 0, `${id}:1`));
    const stale = log.append(createAlert('batch-stale'), 0, 'batch-stale:again');
    const seqs = await Promise.all(appends);
    const refused = await stale.catch((error: unknown) => error);

    expect(refused).toBeInstanceOf(OpstreamError);
    expect((refused as OpstreamError).code).toBe(ErrorCodes.Conflict);
    expect(new Set(seqs).size).toBe(ids.length);
    for (const [i, id] of ids.entries()) {
      expect(await log.lastSequence(`vdsm.VM.${id}`)).toBe(seqs[i]);
      const stored = [];
      for await (const record of log.alerts(`vdsm.VM.${id}`)) stored.push(record);
      // Read back through the seal check: each body went out with its own seal.
      expect(stored).toEqual([{ seq: seqs[i], alert: createAlertLike(id) }]);
    }
  });

  it('stores a retried append with the same msg id once and answers it with the first sequence', async () => {
    const alert = createAlert('retried');
    const [first, second] = await Promise.all([log.append(alert, 0, 'retried:1'), log.append(alert, 0, 'retried:1')]);
    expect(second).toBe(first);
    const stored = [];
    for await (const record of log.alerts('vdsm.VM.retried')) stored.push(record);
    expect(stored).toHaveLength(1);
  });

  it('refuses a msg id with a line break, which would smuggle a header of its own into the append', async () => {
    // The second line would replace the guard: a stale append stored as if it were current.
    const smuggled = 'smuggled:1\r\nNats-Expected-Last-Subject-Sequence: 0';
    const refused = await log.append(createAlert('smuggled'), 0, smuggled).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpstreamError);
    expect((refused as OpstreamError).code).toBe(ErrorCodes.InternalError);
    expect((refused as Error).message).toMatch(/line break/);
    expect(await log.lastSequence('vdsm.VM.smuggled')).toBe(0);
  });

  it('sends exactly the guard headers with each append: its msg id, its expected sequence and its seal', async () => {
    const alert = createAlert('headed');
    const seq = await log.append(alert, 0, 'headed:1');
    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(log.stream, { seq });
    expect(stored?.header.get('Nats-Msg-Id')).toBe('headed:1');
    expect(stored?.header.get('Nats-Expected-Last-Subject-Sequence')).toBe('0');
    expect(stored?.header.get(SEAL_HEADER)).toBe(seal.seal('vdsm.VM.headed', stored?.data ?? new Uint8Array()));
    expect(stored?.header.keys().sort()).toEqual(['Nats-Expected-Last-Subject-Sequence', 'Nats-Msg-Id', SEAL_HEADER].sort());
  });

  it('times out each append whose ack never comes, at its own deadline', async () => {
    const proxy = await startTcpProxy(server.port);
    const through = await connectNats(`nats://127.0.0.1:${proxy.port}`, 'append-test-frozen');
    const stream = await ensureAlertStream(through);
    const frozenLog = await AlertLog.open(through, stream, undefined, { ackTimeoutMs: 400 });
    try {
      expect(await frozenLog.append(createAlert('acked-in-time'), 0, 'acked-in-time:1')).toBeGreaterThan(0);
      proxy.freeze();
      const began = performance.now();
      const outcome = (append: Promise<number>) => append.then(
        (seq) => ({ seq, afterMs: performance.now() - began }),
        (error: unknown) => ({ error, afterMs: performance.now() - began }),
      );
      const first = outcome(frozenLog.append(createAlert('unanswered-1'), 0, 'unanswered-1:1'));
      await sleep(250);
      const second = outcome(frozenLog.append(createAlert('unanswered-2'), 0, 'unanswered-2:1'));
      const [early, late] = await Promise.all([first, second]);
      expect(early).toMatchObject({ error: expect.any(errors.TimeoutError) });
      expect(late).toMatchObject({ error: expect.any(errors.TimeoutError) });
      // Neither before its own deadline; the second not at the first's, nor long after its own.
      expect(early.afterMs).toBeGreaterThanOrEqual(395);
      expect(late.afterMs).toBeGreaterThanOrEqual(645);
      expect(late.afterMs).toBeLessThan(2_000);
      // A timeout no timer can wait (Node would fire it at once, over and over) is refused.
      for (const ackTimeoutMs of [Infinity, 0, 2 ** 31]) {
        await expect(AlertLog.open(through, stream, undefined, { ackTimeoutMs })).rejects.toThrow(/ackTimeoutMs must be/);
      }
    } finally {
      await proxy.close();
      await through.close();
    }
  });

  it('fails an append on a closed connection instead of waiting for an ack that cannot come', async () => {
    const closing = await connectNats(server.url, 'append-test-closed');
    const closedLog = await AlertLog.open(closing, 'VDSM');
    await closing.close();
    await expect(closedLog.append(createAlert('closed'), 0, 'closed:1')).rejects.toThrow(/closed/i);
  });
});

/** What createAlert(id) gives, apart from its time: the stored alert must match it field for field. */
function createAlertLike(id: string): unknown {
  const { time: _time, ...rest } = createAlert(id);
  return expect.objectContaining(rest);
}
