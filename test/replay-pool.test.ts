// Recovery on worker threads (actors/replay-pool.ts) against recovery in one thread, over the same
// stream on a real nats-server: the same states, divergences, quarantine and counts — for long
// histories with a poisoned, garbage, unsealed, misfiled or machine-diverging record in their
// middle, for entities continued from snapshots after a checkpoint, and for snapshots the stream
// does not continue or cannot be trusted. A worker that fails fails the recovery.
import { randomBytes } from 'node:crypto';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildAlert } from '../actors/alert-builder.ts';
import { AlertLog } from '../actors/alert-log.ts';
import { nextSnapshot } from '../actors/pure-transition.ts';
import { Quarantine } from '../actors/quarantine.ts';
import { recoverEntities, type RecoveryOptions, type RecoveryReport } from '../actors/recovery.ts';
import { ReplayPool, ReplayPoolError, replayPoolFor } from '../actors/replay-pool.ts';
import { initialReplayState, type ReplayState } from '../actors/replay.ts';
import { SnapshotStore } from '../actors/snapshot-store.ts';
import { MACHINES } from '../machines/index.ts';
import type { VmEvent } from '../machines/vm.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import type { Logger } from '../src/log.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { historySeal, SEAL_HEADER, sealRecipe } from '../src/security/history-seal.ts';
import { publishDivergedHistory } from './helpers/diverged-history.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { seedStream } from './helpers/seed-stream.ts';

const seal = historySeal(randomBytes(32));
const VM = MACHINES[EntityKinds.VM];
const subjectOf = (id: string) => `vdsm.VM.${id}`;
/** Long histories before the checkpoint; the ones named below get more records after it. */
const BEFORE = Array.from({ length: 12 }, (_, i) => `pa-${i}`);
const CONTINUED = ['pa-0', 'pa-1', 'pa-2', 'pa-3', 'pa-4', 'pa-5'];
/** Its snapshot claims one revision fewer than its seq holds: the tail does not continue it. */
const SKEWED = 'pa-6';
/** Its snapshot is of another machine version: its whole history is replayed. */
const OTHER_VERSION = 'pa-7';
const POISONED = { garbage: 'pa-8', unsealed: 'pa-9', wrongSeal: 'pa-10', misfiled: 'pa-11' };
const MACHINE_DIVERGED = 'pm-0';
const NO_ENTITY = 'vdsm.Nobody.knows.this';

let server: NatsTestServer;
let nc: NatsConnection;
let js: JetStreamClient;
let log: AlertLog;
let checkpoint = 0;
/** The stream sequence of each poisoned entity's bad record. */
const badSeq: Record<string, number> = {};
let divergedAt = 0;
let noEntitySeq = 0;

type Captured = { logger: Logger; lines: string[] };
function capturingLogger(): Captured {
  const lines: string[] = [];
  const keep = (message: string) => void lines.push(message);
  return { logger: { debug: keep, info: keep, warn: keep, error: keep }, lines };
}

async function publish(subject: string, body: string, sealWith = seal): Promise<number> {
  const sealed = headers();
  sealed.set(SEAL_HEADER, sealWith.seal(subject, body));
  return (await js.publish(subject, body, { headers: sealed })).seq;
}

/** The alerts `events` make from `state`, as the runtime would record them, from `revision` on. */
function transitions(id: string, state: ReplayState, events: VmEvent[], revision = state.revision + 1): string[] {
  let before = state.snapshot;
  return events.map((event, i) => {
    const next = nextSnapshot(VM.machine, before, event);
    const alert = buildAlert({ definition: VM, subject: subjectOf(id), before, next, event, revision: revision + i, time: new Date('2026-11-23T00:00:00Z') });
    before = next;
    return JSON.stringify(alert);
  });
}
const pauseEvents = (id: string): VmEvent[] => [{ type: 'PAUSE', task: { id: `${id}-pause`, methodName: 'VM.pause', kwargs: { vmId: id } } }, { type: 'WORK_DONE' }];

/** Everything a report says about an entity, in an order that does not depend on the path taken. */
const view = (report: RecoveryReport) =>
  report.entities
    .map(({ ref, state, snapshotRevision, snapshotSeq }) => ({
      id: ref.id,
      value: state.snapshot.value,
      context: state.snapshot.context,
      status: state.snapshot.status,
      lastSeq: state.lastSeq,
      revision: state.revision,
      placement: state.placement,
      divergence: state.divergence,
      snapshotRevision,
      snapshotSeq,
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
const byId = (report: RecoveryReport, id: string) => report.entities.find(({ ref }) => ref.id === id);
const quarantined = (quarantine: Quarantine) => ({
  count: quarantine.summary.count,
  entries: [...quarantine.summary.recent].sort((a, b) => a.source.localeCompare(b.source) || a.seq - b.seq),
});

type Run = { report: RecoveryReport; quarantine: Quarantine; lines: string[] };
async function recover(options: RecoveryOptions, bucket?: string): Promise<Run> {
  const { logger, lines } = capturingLogger();
  const quarantine = new Quarantine(logger);
  const snapshots = bucket ? await SnapshotStore.open(nc, logger, { bucket, seal }) : undefined;
  if (snapshots) snapshots.quarantine = quarantine;
  const report = await recoverEntities(log, snapshots, quarantine, logger, undefined, options);
  return { report, quarantine, lines };
}
const inThread = (bucket?: string) => recover({ seal, pool: false }, bucket);
const onWorkers = (bucket?: string) => recover({ seal, pool: { workers: 2, minRecords: 0 } }, bucket);
const POOL_LINE = 'replayed the stream on worker threads';

beforeAll(async () => {
  server = await NatsTestServer.start();
  nc = await connectNats(server.url, 'replay-pool-test');
  js = jetstream(nc);
  const stream = await ensureAlertStream(nc);
  log = await AlertLog.open(nc, stream, seal);

  // Before the checkpoint: long histories, saved as snapshots the way a clean stop saves them.
  await seedStream(nc, BEFORE.length, 100, undefined, 'pa', seal);
  const before = await inThread();
  checkpoint = await log.streamLastSequence();
  const snapshots = await SnapshotStore.open(nc, capturingLogger().logger, { bucket: 'POOL_SNAPSHOTS', seal });
  const states = new Map(before.report.entities.map(({ ref, state }) => [ref.id, state]));
  const stateOf = (id: string) => states.get(id) as ReplayState;
  for (const id of BEFORE) {
    const state = stateOf(id);
    await snapshots.save(
      { kind: EntityKinds.VM, id },
      {
        machine: { id: VM.machine.id, version: id === OTHER_VERSION ? VM.version + 100 : VM.version },
        seq: state.lastSeq,
        revision: id === SKEWED ? state.revision - 1 : state.revision,
        snapshot: VM.machine.getPersistedSnapshot(state.snapshot) as never,
      },
    );
  }
  await snapshots.saveCheckpoint(checkpoint);

  // After it: new histories, continuations, and bad records in the middle of histories.
  await seedStream(nc, 10, 100, undefined, 'pb', seal);
  for (const id of [...CONTINUED, SKEWED, OTHER_VERSION]) for (const body of transitions(id, stateOf(id), pauseEvents(id))) await publish(subjectOf(id), body);
  const [pauseGarbage, doneGarbage] = transitions(POISONED.garbage, stateOf(POISONED.garbage), pauseEvents(POISONED.garbage)) as [string, string];
  badSeq[POISONED.garbage] = await publish(subjectOf(POISONED.garbage), '{"alertName": not json');
  await publish(subjectOf(POISONED.garbage), pauseGarbage);
  await publish(subjectOf(POISONED.garbage), doneGarbage);
  const [pauseUnsealed, doneUnsealed] = transitions(POISONED.unsealed, stateOf(POISONED.unsealed), pauseEvents(POISONED.unsealed)) as [string, string];
  badSeq[POISONED.unsealed] = (await js.publish(subjectOf(POISONED.unsealed), pauseUnsealed)).seq;
  await publish(subjectOf(POISONED.unsealed), doneUnsealed);
  const [pauseForged, doneForged] = transitions(POISONED.wrongSeal, stateOf(POISONED.wrongSeal), pauseEvents(POISONED.wrongSeal)) as [string, string];
  badSeq[POISONED.wrongSeal] = await publish(subjectOf(POISONED.wrongSeal), pauseForged, historySeal(randomBytes(32)));
  await publish(subjectOf(POISONED.wrongSeal), doneForged);
  // Another entity's alert, sealed under this one's subject: filed in the wrong history.
  const [misfiled] = transitions('pa-0', stateOf('pa-0'), pauseEvents('pa-0'), stateOf(POISONED.misfiled).revision + 1) as [string];
  badSeq[POISONED.misfiled] = await publish(subjectOf(POISONED.misfiled), misfiled);
  for (const body of transitions(POISONED.misfiled, stateOf(POISONED.misfiled), pauseEvents(POISONED.misfiled))) await publish(subjectOf(POISONED.misfiled), body);
  divergedAt = await publishDivergedHistory(nc, MACHINE_DIVERGED, seal);
  noEntitySeq = await publish(NO_ENTITY, '{}');
  await seedStream(nc, 10, 100, undefined, 'pc', seal);
});

afterAll(async () => {
  await nc?.drain();
  await server?.stop();
});

describe('a whole stream replayed on worker threads', () => {
  it('ends every entity where one thread does: states, divergences, quarantine and counts', async () => {
    const one = await inThread();
    const pool = await onWorkers();
    expect(pool.lines).toContain(POOL_LINE);
    expect(one.lines).not.toContain(POOL_LINE);

    expect(view(pool.report)).toEqual(view(one.report));
    expect({ alertsReplayed: pool.report.alertsReplayed, fromSeq: pool.report.fromSeq, snapshotsUsed: pool.report.snapshotsUsed }).toEqual({
      alertsReplayed: one.report.alertsReplayed,
      fromSeq: 1,
      snapshotsUsed: 0,
    });
    expect(quarantined(pool.quarantine)).toEqual(quarantined(one.quarantine));

    // What both agree on is what recovery must say, not two copies of one mistake.
    expect(pool.report.entities).toHaveLength(BEFORE.length + 10 + 1 + 10);
    const reasons = { garbage: 'not JSON', unsealed: 'carries no seal', wrongSeal: 'seal does not match', misfiled: 'is stored under' } as const;
    for (const [what, id] of Object.entries(POISONED) as Array<[keyof typeof POISONED, string]>) {
      const divergence = byId(pool.report, id)?.state.divergence;
      expect(divergence?.seq).toBe(badSeq[id]);
      expect(divergence?.reason).toContain(reasons[what]);
      expect(pool.quarantine.summary.recent).toContainEqual(expect.objectContaining({ source: 'stream', seq: badSeq[id], subject: subjectOf(id) }));
    }
    expect(byId(pool.report, MACHINE_DIVERGED)?.state.divergence).toMatchObject({ seq: divergedAt, recorded: 'Paused' });
    expect(pool.quarantine.summary.recent).toContainEqual(expect.objectContaining({ seq: noEntitySeq, subject: NO_ENTITY }));
    expect(pool.quarantine.summary.count).toBe(5);
    for (const id of [...CONTINUED, SKEWED, OTHER_VERSION]) expect(byId(pool.report, id)?.state.snapshot.value).toBe('Paused');
    expect(byId(pool.report, 'pc-9')?.state).toMatchObject({ revision: 100, snapshot: { value: 'Up' } });
    expect(pool.report.entities.filter(({ state }) => state.divergence).map(({ ref }) => ref.id).sort()).toEqual([...Object.values(POISONED), MACHINE_DIVERGED].sort());
  });
});

describe('a tail shorter than the pool\'s threshold', () => {
  it('is folded in the reading thread by the same code, ending where recovery without a pool does', async () => {
    const one = await inThread();
    const records = await log.streamLastSequence();
    // Every record but the one under no entity's subject is routed: one short of starting threads.
    const short = await recover({ seal, pool: { workers: 2, minRecords: records } });
    expect(short.lines).not.toContain(POOL_LINE);
    expect(view(short.report)).toEqual(view(one.report));
    expect(short.report.alertsReplayed).toBe(one.report.alertsReplayed);
    expect(quarantined(short.quarantine)).toEqual(quarantined(one.quarantine));
    expect(byId(short.report, POISONED.unsealed)?.state.divergence?.seq).toBe(badSeq[POISONED.unsealed]);
  });
});

describe('a tail after a checkpoint replayed on worker threads', () => {
  it('continues entities from their snapshots exactly as one thread does, and as a full replay ends them', async () => {
    const one = await inThread('POOL_SNAPSHOTS');
    const pool = await onWorkers('POOL_SNAPSHOTS');
    expect(pool.lines).toContain(POOL_LINE);
    expect(pool.report.fromSeq).toBe(checkpoint + 1);

    expect(view(pool.report)).toEqual(view(one.report));
    expect({ alertsReplayed: pool.report.alertsReplayed, snapshotsUsed: pool.report.snapshotsUsed }).toEqual({
      alertsReplayed: one.report.alertsReplayed,
      snapshotsUsed: one.report.snapshotsUsed,
    });
    expect(quarantined(pool.quarantine)).toEqual(quarantined(one.quarantine));

    // Continued from a snapshot: the snapshot's revision kept, the state where a full replay ends.
    const full = await inThread();
    for (const id of CONTINUED) {
      const continued = byId(pool.report, id);
      const replayed = byId(full.report, id);
      expect(continued?.snapshotRevision).toBe(100);
      expect(continued?.state.divergence).toBeUndefined();
      expect({ value: continued?.state.snapshot.value, context: continued?.state.snapshot.context, lastSeq: continued?.state.lastSeq, revision: continued?.state.revision }).toEqual({
        value: replayed?.state.snapshot.value,
        context: replayed?.state.snapshot.context,
        lastSeq: replayed?.state.lastSeq,
        revision: 102,
      });
    }
    // The skewed snapshot is not continued by the tail: replayed from the start and reported.
    expect(byId(pool.report, SKEWED)).toMatchObject({ snapshotRevision: 0, state: { revision: 102, snapshot: { value: 'Paused' } } });
    expect(byId(pool.report, SKEWED)?.state.divergence).toBeUndefined();
    expect(pool.quarantine.summary.recent).toContainEqual(expect.objectContaining({ source: 'snapshot', reason: expect.stringContaining('the stream does not continue it') }));
    // The snapshot of another version is not used: the whole history, then the tail.
    expect(byId(pool.report, OTHER_VERSION)).toMatchObject({ snapshotRevision: 0, state: { revision: 102, snapshot: { value: 'Paused' } } });
    // A bad record after a snapshot diverges the entity where it stands.
    expect(byId(pool.report, POISONED.garbage)?.state.divergence?.seq).toBe(badSeq[POISONED.garbage]);
  });
});

describe('when the pool is used', () => {
  it('replays in one thread a tail shorter than the threshold, or a sealed log without its seal', () => {
    const none = () => undefined;
    expect(replayPoolFor(10, { minRecords: 20, workers: 2 }, { sealed: true, seal }, none)).toBeUndefined();
    expect(replayPoolFor(10, false, { sealed: true, seal }, none)).toBeUndefined();
    // The workers could not check what the log checks.
    expect(replayPoolFor(30, { minRecords: 20, workers: 2 }, { sealed: true, seal: undefined }, none)).toBeUndefined();
    expect(replayPoolFor(30, { minRecords: 20, workers: 2 }, { sealed: true, seal: { seal: () => '', verify: () => true } }, none)).toBeUndefined();
    expect(replayPoolFor(30, { minRecords: 20, workers: 2 }, { sealed: true, seal }, none)).toBeInstanceOf(ReplayPool);
  });

  it('gives away a copy of the key only to who asks for the recipe, never on the seal itself', () => {
    expect(JSON.stringify(seal)).toBe('{}');
    expect(Object.keys(seal).sort()).toEqual(['seal', 'verify']);
    const recipe = sealRecipe(seal);
    expect(recipe?.key).toHaveLength(32);
  });
});

describe('a failing worker', () => {
  it('leaves recovery to one thread, which ends every entity where a pool that works would', async () => {
    const expected = await inThread();
    // The threads fail as a broken install or a thread limit would make them.
    const failing = vi.spyOn(ReplayPool.prototype, 'finish').mockRejectedValueOnce(new ReplayPoolError('a replay worker failed: simulated'));
    try {
      const fallenBack = await onWorkers();
      expect(failing).toHaveBeenCalledTimes(1);
      expect(fallenBack.lines).toContain('replay workers failed; recovering in one thread');
      expect(view(fallenBack.report)).toEqual(view(expected.report));
      expect(fallenBack.report.alertsReplayed).toBe(expected.report.alertsReplayed);
    } finally {
      failing.mockRestore();
    }
  });

  it('fails the recovery with the worker\'s error instead of hanging', async () => {
    // An entity of a kind no machine folds: the worker throws at its first record.
    const pool = new ReplayPool({ workers: 1, minRecords: 0, seal, onQuarantined: () => undefined });
    try {
      const message = { seq: 1, subject: subjectOf('x'), data: new TextEncoder().encode('{}') };
      const entity = { ref: { kind: 'Nothing' as typeof EntityKinds.VM, id: 'x' }, definition: VM, state: initialReplayState(VM, 'x') };
      expect(pool.route(message.subject, entity, message)).toBeUndefined();
      await expect(pool.finish(() => VM)).rejects.toThrow(/^a replay worker failed: /);
    } finally {
      await pool.terminate();
    }
  });
});
