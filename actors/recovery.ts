// Rebuilds every entity from the stream at start: trusted snapshots first, then one pass over the
// alerts after the checkpoint, each recorded cause event fed through today's machine and checked
// against the recorded state.
import { MACHINES, type MachineDefinition } from '../machines/index.ts';
import { alertSubject, parseAlertSubject } from '../src/domain/subjects.ts';
import type { Logger } from '../src/log.ts';
import type { AlertLog } from './alert-log.ts';
import type { EntityRef } from './drivers/driver.ts';
import { initialReplayState, replayOne, restoreReplayState, type ReplayState } from './replay.ts';
import type { SnapshotStore } from './snapshot-store.ts';

export type RecoveredEntity = {
  ref: EntityRef;
  definition: MachineDefinition;
  state: ReplayState;
  /** The revision its trusted snapshot covers (0: none); the tail may have moved past it. */
  snapshotRevision: number;
};

export type RecoveryReport = {
  entities: RecoveredEntity[];
  alertsReplayed: number;
  snapshotsUsed: number;
  fromSeq: number;
};

const definitions = MACHINES as Partial<Record<string, MachineDefinition>>;

export async function recoverEntities(log: AlertLog, snapshots: SnapshotStore | undefined, logger: Logger): Promise<RecoveryReport> {
  const loaded = snapshots ? await snapshots.loadAll(definitions) : undefined;
  const states = new Map<string, RecoveredEntity>();
  const entityFor = (ref: EntityRef): RecoveredEntity | undefined => {
    const key = `${ref.kind}.${ref.id}`;
    let entity = states.get(key);
    const definition = definitions[ref.kind];
    if (!entity && definition) {
      entity = { ref, definition, state: initialReplayState(definition, ref.id), snapshotRevision: 0 };
      states.set(key, entity);
    }
    return entity;
  };

  for (const { ref, stored } of loaded?.snapshots ?? []) {
    const entity = entityFor(ref);
    if (!entity) continue;
    entity.state = restoreReplayState(entity.definition, stored);
    entity.snapshotRevision = stored.revision;
  }
  const fromSeq = (loaded?.checkpoint ?? 0) + 1;
  let alertsReplayed = 0;
  // A distrusted snapshot leaves a gap before the checkpoint: read that entity's whole history.
  for (const ref of loaded?.distrusted ?? []) {
    const entity = entityFor(ref);
    if (!entity) continue;
    for await (const stored of log.read(alertSubject(entity.ref.kind, entity.ref.id))) {
      entity.state = replayOne(entity.definition, entity.state, stored);
      alertsReplayed += 1;
    }
  }

  const total = Math.max(0, (await log.streamLastSequence()) - fromSeq + 1);
  let read = 0;
  for await (const raw of log.readAll(fromSeq)) {
    read += 1;
    if (read % 100_000 === 0) logger.info('recovering from the stream', { read, of: total });
    const ref = parseAlertSubject(raw.subject);
    const entity = ref && entityFor(ref);
    if (!entity || raw.seq <= entity.state.lastSeq) continue;
    entity.state = replayOne(entity.definition, entity.state, { seq: raw.seq, alert: raw.parse() });
    alertsReplayed += 1;
  }

  const entities = [...states.values()].filter((entity) => entity.state.revision > 0);
  for (const { ref, state } of entities) {
    if (state.divergence) {
      logger.error('history diverges from the machine; refusing to own the entity', {
        subject: alertSubject(ref.kind, ref.id),
        divergence: state.divergence,
      });
    }
  }
  return { entities, alertsReplayed, snapshotsUsed: loaded?.snapshots.length ?? 0, fromSeq };
}
