// Rebuilds every entity from the stream at start: trusted snapshots first, then one pass over the
// alerts after the checkpoint, each recorded cause event fed through today's machine and checked
// against the recorded state. No record stops it: one that cannot be history is quarantined and
// only the entity whose subject holds it is affected (it diverges there).
import { MACHINES, type MachineDefinition } from '../machines/index.ts';
import { alertSubject, entityKey, parseAlertSubject } from '../src/domain/subjects.ts';
import type { Logger } from '../src/log.ts';
import type { HistorySeal } from '../src/security/history-seal.ts';
import { isQuarantined, type AlertLog } from './alert-log.ts';
import type { EntityRef } from './drivers/driver.ts';
import type { Quarantine } from './quarantine.ts';
import { initialReplayState, replayOne, restoreReplayState, type ReplayState } from './replay.ts';
import { ReplayPoolError, replayPoolFor, type ReplayPoolOptions } from './replay-pool.ts';
import { snapshotKey, type SnapshotStore } from './snapshot-store.ts';

export type RecoveredEntity = {
  ref: EntityRef;
  definition: MachineDefinition;
  state: ReplayState;
  /** The revision its trusted snapshot covers (0: none); the tail may have moved past it. */
  snapshotRevision: number;
  /** The stream sequence that snapshot covers (0: none). */
  snapshotSeq: number;
  /** The snapshot came from an image and the KV may not hold it: the entity is to be saved again. */
  unsaved?: true;
};

export type RecoveryReport = {
  entities: RecoveredEntity[];
  alertsReplayed: number;
  snapshotsUsed: number;
  fromSeq: number;
};

export type RecoveryOptions = {
  /**
   * The seal `log` checks records with. Worker threads need it to check the records they fold:
   * without it a sealed log is replayed in this thread only.
   */
  seal?: HistorySeal;
  /** Fold a long tail on worker threads (replay-pool.ts); false: always in this thread. */
  pool?: ReplayPoolOptions | false;
};

const definitions = MACHINES as Partial<Record<string, MachineDefinition>>;

export async function recoverEntities(
  log: AlertLog,
  snapshots: SnapshotStore | undefined,
  quarantine: Quarantine,
  logger: Logger,
  /** Whose checkpoint to start from: each agent sharing the bucket has its own. */
  hostId?: string,
  options: RecoveryOptions = {},
): Promise<RecoveryReport> {
  try {
    return await recoverOnce(log, snapshots, quarantine, logger, hostId, options);
  } catch (error) {
    if (!(error instanceof ReplayPoolError)) throw error;
    // Threads are a speed-up: when they fail (a broken install, a thread or memory limit), one
    // thread folds the same records.
    logger.warn('replay workers failed; recovering in one thread', { error: String(error) });
    return recoverOnce(log, snapshots, quarantine, logger, hostId, { ...options, pool: false });
  }
}

async function recoverOnce(
  log: AlertLog,
  snapshots: SnapshotStore | undefined,
  quarantine: Quarantine,
  logger: Logger,
  hostId: string | undefined,
  options: RecoveryOptions,
): Promise<RecoveryReport> {
  const streamLast = await log.streamLastSequence();
  const loaded = snapshots ? await snapshots.loadAll(definitions, streamLast, hostId) : undefined;
  const states = new Map<string, RecoveredEntity>();
  const entityFor = (ref: EntityRef, definition: MachineDefinition): RecoveredEntity => {
    const key = entityKey(ref);
    let entity = states.get(key);
    if (!entity) {
      entity = { ref, definition, state: initialReplayState(definition, ref.id), snapshotRevision: 0, snapshotSeq: 0 };
      states.set(key, entity);
    }
    return entity;
  };
  const replaySubject = async (entity: RecoveredEntity): Promise<number> => {
    let replayed = 0;
    for await (const record of log.read(alertSubject(entity.ref.kind, entity.ref.id))) {
      if (isQuarantined(record)) quarantine.add({ source: 'stream', ...record });
      entity.state = replayOne(entity.definition, entity.state, record);
      replayed += 1;
    }
    return replayed;
  };

  // Restored directly: an initial state built first and thrown away was a tenth of a restart's time.
  for (const { ref, stored, unsaved } of loaded?.snapshots ?? []) {
    const definition = definitions[ref.kind];
    if (!definition) continue;
    states.set(entityKey(ref), {
      ref,
      definition,
      state: restoreReplayState(definition, stored),
      snapshotRevision: stored.revision,
      snapshotSeq: stored.seq,
      ...(unsaved ? { unsaved } : {}),
    });
  }
  const fromSeq = (loaded?.checkpoint ?? 0) + 1;
  let alertsReplayed = 0;
  // A distrusted snapshot leaves a gap before the checkpoint: read that entity's whole history.
  for (const ref of loaded?.distrusted ?? []) {
    const definition = definitions[ref.kind];
    if (definition) alertsReplayed += await replaySubject(entityFor(ref, definition));
  }

  const total = Math.max(0, streamLast - fromSeq + 1);
  let read = 0;
  // Parsing a subject checks every id token: once per entity, not once per record.
  const bySubject = new Map<string, RecoveredEntity | null>();
  const entityOf = (subject: string): RecoveredEntity | null => {
    let entity = bySubject.get(subject);
    if (entity === undefined) {
      const ref = parseAlertSubject(subject);
      const definition = ref && definitions[ref.kind];
      entity = ref && definition ? entityFor(ref, definition) : null;
      bySubject.set(subject, entity);
    }
    return entity;
  };
  // A long tail is judged and folded on worker threads; this thread reads and routes. An entity's
  // state here is where its fold starts until the pool hands back where it ended.
  const pool = replayPoolFor(total, options.pool, { sealed: log.sealed, seal: options.seal }, (record) => quarantine.add({ source: 'stream', ...record }));
  try {
    for await (const raw of log.readAll(fromSeq)) {
      read += 1;
      if (read % 100_000 === 0) logger.info('recovering from the stream', { read, of: total });
      const entity = entityOf(raw.subject);
      if (!entity) {
        quarantine.add({ source: 'stream', seq: raw.seq, subject: raw.subject, reason: 'its subject is no entity’s alert name' });
        continue;
      }
      if (raw.seq <= entity.state.lastSeq) continue;
      if (pool) {
        const behind = pool.route(raw.subject, entity, raw.message);
        if (behind) await behind;
        continue;
      }
      const record = log.decode(raw.message);
      if (isQuarantined(record)) quarantine.add({ source: 'stream', ...record });
      entity.state = replayOne(entity.definition, entity.state, record);
      alertsReplayed += 1;
    }
    if (pool) {
      const folded = await pool.finish((key) => states.get(key)?.definition);
      for (const [key, state] of folded.states) (states.get(key) as RecoveredEntity).state = state;
      alertsReplayed += folded.replayed;
      if (pool.started) logger.info('replayed the stream on worker threads', { workers: pool.workers, alerts: folded.replayed });
    }
  } finally {
    await pool?.terminate();
  }
  bySubject.clear();

  // A snapshot the tail does not continue (its revisions jump, its state does not fit) was not a
  // true picture of the stream: replay that entity from its beginning instead of believing it.
  // So is an entity met only after the checkpoint, with no snapshot: what came before was unread.
  for (const entity of states.values()) {
    if (!entity.state.divergence || (entity.snapshotRevision === 0 && fromSeq === 1)) continue;
    const fromSnapshot = entity.state.divergence;
    const revision = entity.snapshotRevision;
    entity.state = initialReplayState(entity.definition, entity.ref.id);
    entity.snapshotRevision = 0;
    entity.snapshotSeq = 0;
    delete entity.unsaved;
    alertsReplayed += await replaySubject(entity);
    if (entity.state.divergence) continue;
    if (revision > 0) snapshots?.distrust(entity.ref, revision, `the stream does not continue it: ${fromSnapshot.reason}`);
    else quarantine.add({ source: 'snapshot', seq: 0, subject: snapshotKey(entity.ref), reason: `no snapshot covers its records before the checkpoint (${fromSnapshot.reason})` });
  }

  // An entity whose only records were quarantined has no history: it stays diverged, not created.
  const entities = [...states.values()].filter((entity) => entity.state.revision > 0 || entity.state.divergence);
  for (const { ref, state } of entities) {
    if (state.divergence) {
      logger.error('history cannot be replayed; refusing to own the entity', { subject: alertSubject(ref.kind, ref.id), divergence: state.divergence });
    }
  }
  return { entities, alertsReplayed, snapshotsUsed: loaded?.snapshots.length ?? 0, fromSeq };
}
