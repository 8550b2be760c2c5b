// What must hold of the alert stream after any crash: nothing acknowledged lost, nothing stored
// twice, every history replayable on today's machines, every task ended.
import type { NatsConnection } from '@nats-io/transport-node';
import { expect } from 'vitest';
import { AlertLog, isQuarantined } from '../../actors/alert-log.ts';
import type { Alert } from '../../src/domain/alert.ts';
import { DEFAULT_STREAM } from '../../src/nats/alert-stream.ts';
import { verify } from '../../src/replay/debugger.ts';

export type Acknowledged = Map<string, { alertName: string; methodName: string }>;

export async function checkStreamInvariants(nc: NatsConnection, acknowledged: Acknowledged): Promise<{ entities: number; alerts: number }> {
  const log = await AlertLog.open(nc, DEFAULT_STREAM);
  const histories = new Map<string, Array<{ seq: number; alert: Alert }>>();
  for await (const raw of log.readAll()) {
    const record = log.decode(raw.message);
    if (isQuarantined(record)) throw new Error(`sequence ${raw.seq} on ${raw.subject} is not history: ${record.reason}`);
    const { alert } = record;
    histories.set(alert.alertName, [...(histories.get(alert.alertName) ?? []), { seq: raw.seq, alert }]);
  }
  const registered = new Map<string, string>();
  const ended = new Set<string>();
  let alerts = 0;
  for (const [alertName, history] of histories) {
    alerts += history.length;
    // Stored once each: revisions run 1..n without a gap or a repeat.
    expect(history.map(({ alert }) => alert.revision), alertName).toEqual(history.map((_, i) => i + 1));
    // A state its machine allows: today's machine reproduces every recorded state.
    const verification = verify({ format: 'opstream-history/1', alertName, exportedAt: '', alerts: history });
    expect(verification, alertName).toMatchObject({ ok: true });
    for (const { alert } of history) {
      if (alert.task && !registered.has(alert.task.id)) registered.set(alert.task.id, alertName);
      if (alert.task && (alert.taskStatus === 'finished' || alert.taskStatus === 'failed')) ended.add(alert.task.id);
      if (alert.cancelledTaskId) ended.add(alert.cancelledTaskId);
    }
  }
  // No acknowledged registration is lost, and each is on the entity it was made for.
  for (const [taskId, { alertName, methodName }] of acknowledged) {
    expect(registered.get(taskId), `${methodName} ${taskId}`).toBe(alertName);
  }
  // Every task is over: finished, failed or cancelled — resumed ones included.
  const unfinished = [...registered.keys()].filter((taskId) => !ended.has(taskId));
  expect(unfinished).toEqual([]);
  return { entities: histories.size, alerts };
}

/** A small seeded PRNG, so a failing fault run can be replayed with its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
