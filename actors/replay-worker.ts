// A replay worker thread (see replay-pool.ts): folds the records of its share of the entities
// (replay-fold.ts) and hands back each entity's state, as XState's persisted snapshot, at the end.
import { parentPort, workerData } from 'node:worker_threads';
import { MACHINES } from '../machines/index.ts';
import { sealFromRecipe } from '../src/security/history-seal.ts';
import type { FoldedEntity, FromWorker, SubjectIntro, ToWorker, WorkerSetup } from './replay-batch.ts';
import { ReplayFolds } from './replay-fold.ts';
import { initialReplayState, restoreReplayState } from './replay.ts';

const port = parentPort;
if (!port) throw new Error('replay-worker.ts runs as a worker thread of recovery (replay-pool.ts)');
const setup = workerData as WorkerSetup;
const folds = new ReplayFolds(setup.seal && sealFromRecipe(setup.seal));
// Dropped from the setup once used: the key stays only inside the seal's closure.
delete setup.seal;

function meet({ index, subject, key, kind, id, start }: SubjectIntro): void {
  const definition = MACHINES[kind];
  folds.meet(index, subject, key, definition, () => {
    if (!start) return initialReplayState(definition, id);
    const restored = restoreReplayState(definition, start.stored);
    return start.divergence ? { ...restored, divergence: start.divergence } : restored;
  });
}

function result(): FromWorker {
  const entities: FoldedEntity[] = [];
  for (const { key, definition, state } of folds.entities()) {
    entities.push({
      key,
      lastSeq: state.lastSeq,
      revision: state.revision,
      ...(state.placement ? { placement: state.placement } : {}),
      ...(state.divergence ? { divergence: state.divergence } : {}),
      snapshot: definition.machine.getPersistedSnapshot(state.snapshot) as unknown as FoldedEntity['snapshot'],
    });
  }
  return { type: 'result', entities, replayed: folds.replayed };
}

port.on('message', (received: ToWorker) => {
  if (received.type === 'end') {
    port.postMessage(result());
    return;
  }
  for (const intro of received.subjects) meet(intro);
  const reply: FromWorker = { type: 'folded', quarantined: folds.fold(received.buffer, received.length) };
  port.postMessage(reply);
});
