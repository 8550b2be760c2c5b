// A replay worker thread (see replay-pool.ts): judges and folds the records of its share of the
// entities exactly as recovery does in one thread — judgeAlertRecord, then replayOne through
// today's machine — and hands back each entity's state at the end.
import { parentPort, workerData } from 'node:worker_threads';
import { MACHINES, type MachineDefinition } from '../machines/index.ts';
import { judgeAlertRecord, type StoredMessage } from '../src/nats/alert-record.ts';
import { sealFromRecipe } from '../src/security/history-seal.ts';
import { isQuarantined, type HistoryRecord, type QuarantinedRecord } from './alert-log.ts';
import { readBatch, type FoldedEntity, type FromWorker, type SubjectIntro, type ToWorker, type WorkerSetup } from './replay-batch.ts';
import { initialReplayState, replayOne, restoreReplayState, type ReplayState } from './replay.ts';

type Entity = { key: string; definition: MachineDefinition; state: ReplayState };

const port = parentPort;
if (!port) throw new Error('replay-worker.ts runs as a worker thread of recovery (replay-pool.ts)');
const setup = workerData as WorkerSetup;
const seal = setup.seal && sealFromRecipe(setup.seal);
// Dropped from the setup once used: the key stays only inside the seal's closure.
delete setup.seal;

const entities = new Map<string, Entity>();
/** By the subject index the reading thread gave each subject. */
const subjects: Array<{ subject: string; entity: Entity }> = [];
let replayed = 0;

function meet(intro: SubjectIntro): void {
  let entity = entities.get(intro.key);
  if (!entity) {
    const definition = MACHINES[intro.kind];
    const start = intro.start;
    const state = start ? { ...restoreReplayState(definition, start.stored), ...(start.divergence ? { divergence: start.divergence } : {}) } : initialReplayState(definition, intro.id);
    entity = { key: intro.key, definition, state };
    entities.set(intro.key, entity);
  }
  subjects[intro.index] = { subject: intro.subject, entity };
}

// One message object for every record: the judge keeps nothing of it, and a record less to collect.
let currentSeal = '';
const message: StoredMessage & { headers: { get(name: string): string } } = {
  seq: 0,
  subject: '',
  data: new Uint8Array(0),
  headers: { get: () => currentSeal },
};

function fold(buffer: ArrayBuffer, length: number): QuarantinedRecord[] {
  const quarantined: QuarantinedRecord[] = [];
  readBatch(buffer, length, ({ seq, subjectIndex, seal: sealed, data }) => {
    const target = subjects[subjectIndex];
    if (!target) throw new Error(`a record at sequence ${seq} names subject #${subjectIndex}, which was never introduced`);
    const { subject, entity } = target;
    if (seq <= entity.state.lastSeq) return;
    message.seq = seq;
    message.subject = subject;
    message.data = data;
    currentSeal = sealed;
    // As AlertLog.decode words it: the judge's verdict as a history record.
    const judged = judgeAlertRecord(message, seal);
    const record: HistoryRecord = typeof judged === 'string' ? { seq, subject, reason: judged } : { seq, alert: judged };
    if (isQuarantined(record)) quarantined.push(record);
    entity.state = replayOne(entity.definition, entity.state, record);
    replayed += 1;
  });
  return quarantined;
}

function result(): FromWorker {
  const folded: FoldedEntity[] = [];
  for (const { key, definition, state } of entities.values()) {
    folded.push({
      key,
      lastSeq: state.lastSeq,
      revision: state.revision,
      ...(state.placement ? { placement: state.placement } : {}),
      ...(state.divergence ? { divergence: state.divergence } : {}),
      snapshot: definition.machine.getPersistedSnapshot(state.snapshot) as unknown as FoldedEntity['snapshot'],
    });
  }
  return { type: 'result', entities: folded, replayed };
}

port.on('message', (received: ToWorker) => {
  if (received.type === 'end') {
    port.postMessage(result());
    return;
  }
  for (const intro of received.subjects) meet(intro);
  const reply: FromWorker = { type: 'folded', quarantined: fold(received.buffer, received.length) };
  port.postMessage(reply);
});
