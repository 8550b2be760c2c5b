// Recovery's fold of packed records (replay-batch.ts), wherever it runs: in a replay worker, or in
// the reading thread when the tail was too short to start workers for. Each record is judged and
// folded exactly as recovery does one it decodes itself: judgeAlertRecord, then replayOne.
import type { MachineDefinition } from '../machines/index.ts';
import type { StoredMessage } from '../src/nats/alert-record.ts';
import type { HistorySeal } from '../src/security/history-seal.ts';
import { historyRecordOf, isQuarantined, type QuarantinedRecord } from './alert-log.ts';
import { readBatch } from './replay-batch.ts';
import { replayOne, type ReplayState } from './replay.ts';

export type FoldedState = { key: string; definition: MachineDefinition; state: ReplayState };

export class ReplayFolds {
  readonly #entities = new Map<string, FoldedState>();
  /** By the index the reading thread gave each subject. */
  readonly #subjects: Array<{ subject: string; entity: FoldedState }> = [];
  #replayed = 0;
  // One message object for every record: the judge keeps nothing of it, and a record less to collect.
  #seal = '';
  readonly #message: StoredMessage & { headers: { get(name: string): string } } = {
    seq: 0,
    subject: '',
    data: new Uint8Array(0),
    headers: { get: () => this.#seal },
  };

  constructor(private readonly seal: HistorySeal | undefined) {}

  /** Records folded (those a state already covered are not). */
  get replayed(): number {
    return this.#replayed;
  }

  /** Every entity met, with the state its fold reached. */
  entities(): IterableIterator<FoldedState> {
    return this.#entities.values();
  }

  /**
   * `subject`, known as `index` in the batches that follow, holds records of the entity `key`;
   * the entity's fold starts from `start` unless an earlier subject of it already began one.
   */
  meet(index: number, subject: string, key: string, definition: MachineDefinition, start: () => ReplayState): void {
    let entity = this.#entities.get(key);
    if (!entity) {
      entity = { key, definition, state: start() };
      this.#entities.set(key, entity);
    }
    this.#subjects[index] = { subject, entity };
  }

  /** Folds every record of a batch; resolves with those that cannot be history. */
  fold(buffer: ArrayBuffer, length: number): QuarantinedRecord[] {
    const quarantined: QuarantinedRecord[] = [];
    const message = this.#message;
    readBatch(buffer, length, ({ seq, subjectIndex, seal, data }) => {
      const target = this.#subjects[subjectIndex];
      if (!target) throw new Error(`a record at sequence ${seq} names subject #${subjectIndex}, which was never introduced`);
      const { subject, entity } = target;
      if (seq <= entity.state.lastSeq) return;
      message.seq = seq;
      message.subject = subject;
      message.data = data;
      this.#seal = seal;
      const record = historyRecordOf(message, this.seal);
      if (isQuarantined(record)) quarantined.push(record);
      entity.state = replayOne(entity.definition, entity.state, record);
      this.#replayed += 1;
    });
    return quarantined;
  }
}
