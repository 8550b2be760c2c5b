// The fast path in front of the Alert schema is never weaker than it: over real alerts and every
// single mutation of them (a key removed, added, or given another type or value), whatever the
// fast path accepts the schema accepts too, and returns unchanged. Replay's JSON equality agrees
// with isDeepStrictEqual on the same values, and its initial snapshots with XState's.
import { isDeepStrictEqual } from 'node:util';
import { initialTransition, type AnyStateMachine } from 'xstate';
import { describe, expect, it } from 'vitest';
import { buildAlert } from '../actors/alert-builder.ts';
import { initialSnapshot, nextSnapshot } from '../actors/pure-transition.ts';
import { jsonEqual } from '../actors/replay.ts';
import { MACHINES } from '../machines/index.ts';
import type { VmEvent } from '../machines/vm.ts';
import { Alert } from '../src/domain/alert.ts';
import { isExactAlert } from '../src/domain/alert-shape.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { isExactSnapshot, StoredSnapshot } from '../actors/snapshot-store.ts';

/** A VM's history through the real machine: create, progress, pause/cont, an I/O error, a destroy during a create. */
function realAlerts(): unknown[] {
  const definition = MACHINES[EntityKinds.VM];
  const task = (id: string, methodName: string) => ({ id, methodName, kwargs: { vmId: 'vm-1' }, flowId: 'flow-1' });
  const events: VmEvent[] = [
    { type: 'CREATE', task: task('t0', 'VM.create'), params: { memoryMiB: 1024 } },
    { type: 'WORK_PROGRESS', percentage: 40 },
    { type: 'WORK_DONE' },
    { type: 'WORK_DONE' },
    { type: 'PAUSE', task: task('t1', 'VM.pause') },
    { type: 'WORK_DONE' },
    { type: 'CONT', task: task('t2', 'VM.cont') },
    { type: 'WORK_DONE' },
    { type: 'IO_ERROR', error: [5, 'EIO'] } as VmEvent,
  ];
  let snapshot = initialTransition(definition.machine, { id: 'vm-1' })[0];
  const alerts: unknown[] = [];
  for (const [index, event] of events.entries()) {
    if (!snapshot.can(event)) continue;
    const next = nextSnapshot(definition.machine, snapshot, event);
    const alert = buildAlert({ definition, subject: 'vdsm.VM.vm-1', before: snapshot, next, event, revision: index + 1, time: new Date(0) });
    alerts.push(JSON.parse(JSON.stringify(alert)));
    snapshot = next;
  }
  return alerts;
}

const REPLACEMENTS: unknown[] = [null, 0, -1, 101, 1.5, '', 'x', 'Paused', [], [1, 1], [2, 1], [0, ''], {}, { type: '' }, true];

/** Every value reached by changing one place of `value`: removed, replaced, or (objects) given an extra key. */
function* mutations(value: unknown): Generator<unknown> {
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      for (const changed of mutations(item)) yield value.map((other, i) => (i === index ? changed : other));
      yield value.filter((_, i) => i !== index);
    }
    yield [...value, 1];
    return;
  }
  if (typeof value !== 'object' || value === null) {
    for (const replacement of REPLACEMENTS) yield replacement;
    return;
  }
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    for (const changed of mutations(object[key])) yield { ...object, [key]: changed };
    for (const replacement of REPLACEMENTS) yield { ...object, [key]: replacement };
    const rest = { ...object };
    delete rest[key];
    yield rest;
  }
  yield { ...object, unexpected: 1 };
}

/**
 * Every mutation of every value in `reals` that `isExact` accepts, the schema accepts too and
 * returns unchanged; how many were tried and how many the schema rejected (so a test can tell
 * the corpus exercised both verdicts).
 */
function holdToSchema(reals: unknown[], isExact: (json: unknown) => boolean, schema: { safeParse(json: unknown): { success: boolean; data?: unknown } }) {
  let tried = 0;
  let rejectedBySchema = 0;
  for (const real of reals) {
    for (const mutant of mutations(real)) {
      tried += 1;
      const parsed = schema.safeParse(mutant);
      if (!parsed.success) rejectedBySchema += 1;
      if (!isExact(mutant)) continue;
      expect(parsed.success, JSON.stringify(mutant)).toBe(true);
      expect(parsed.data).toStrictEqual(mutant);
    }
  }
  return { tried, rejectedBySchema };
}

describe('the Alert fast path', () => {
  const alerts = realAlerts();

  it('accepts real alerts as they are (else it saves nothing)', () => {
    expect(alerts.length).toBeGreaterThan(5);
    for (const alert of alerts) expect(isExactAlert(alert)).toBe(true);
  });

  it('accepts no mutation the schema rejects, and none the schema would change', () => {
    const { tried, rejectedBySchema } = holdToSchema(alerts, isExactAlert, Alert);
    expect(tried).toBeGreaterThan(1_000);
    expect(rejectedBySchema).toBeGreaterThan(tried / 2);
  });
});

describe('the snapshot fast path', () => {
  /** A running VM's stored snapshot as an agent saves it, with and without an owner. */
  function realSnapshots(): unknown[] {
    const definition = MACHINES[EntityKinds.VM];
    let snapshot = initialTransition(definition.machine, { id: 'vm-1' })[0];
    const events: VmEvent[] = [{ type: 'CREATE', task: { id: 't0', methodName: 'VM.create', kwargs: {} }, params: { memoryMiB: 512 } }, { type: 'WORK_DONE' }, { type: 'WORK_DONE' }];
    for (const event of events) snapshot = nextSnapshot(definition.machine, snapshot, event);
    const stored = { machine: { id: definition.machine.id, version: definition.version }, seq: 42, revision: 3, snapshot: definition.machine.getPersistedSnapshot(snapshot) };
    return [stored, { ...stored, placement: { hostId: 'h1', lost: true, lostEpoch: 2, epoch: 1 } }].map((value) => JSON.parse(JSON.stringify(value)) as unknown);
  }

  it('accepts real snapshots as they are', () => {
    for (const stored of realSnapshots()) expect(isExactSnapshot(stored)).toBe(true);
  });

  it('accepts no mutation the schema rejects, and none the schema would change', () => {
    const { tried, rejectedBySchema } = holdToSchema(realSnapshots(), isExactSnapshot, StoredSnapshot);
    expect(tried).toBeGreaterThan(500);
    expect(rejectedBySchema).toBeGreaterThan(50);
  });
});

describe('replay\'s JSON equality', () => {
  it('says what isDeepStrictEqual says of JSON values', () => {
    let differing = 0;
    for (const alert of realAlerts()) {
      for (const mutant of mutations(alert)) {
        const copy: unknown = JSON.parse(JSON.stringify(mutant ?? null));
        expect(jsonEqual(alert, mutant)).toBe(isDeepStrictEqual(alert, mutant));
        expect(jsonEqual(mutant, copy)).toBe(isDeepStrictEqual(mutant, copy));
        if (!jsonEqual(alert, mutant)) differing += 1;
      }
    }
    expect(differing).toBeGreaterThan(1_000);
    expect(jsonEqual({ a: undefined }, {})).toBe(false);
    expect(jsonEqual({ a: undefined }, { b: undefined })).toBe(false);
  });
});

describe('replay\'s initial snapshots', () => {
  it('are XState\'s initialTransition for every machine', () => {
    for (const { machine } of Object.values(MACHINES) as Array<{ machine: AnyStateMachine }>) {
      const ours = initialSnapshot(machine, { id: 'entity-1' });
      const [xstate] = initialTransition(machine, { id: 'entity-1' });
      expect(machine.getPersistedSnapshot(ours)).toStrictEqual(machine.getPersistedSnapshot(xstate));
      expect(ours.status).toBe('active');
    }
  });
});
