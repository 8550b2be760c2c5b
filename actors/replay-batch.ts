// The wire format between recovery's reading thread and its replay workers (replay-pool.ts): the
// records of one worker's entities packed into one byte buffer, which is transferred, not copied —
// a structured clone per record cost the reading thread about what decoding it would have.
//
// A record: seq (float64), subject index (uint32: the worker was told the subject once),
// seal length (uint32) and its UTF-8 bytes, data length (uint32) and the stored body unchanged.
// The messages around the batches are below it.
import type { EntityKind } from '../src/domain/subjects.ts';
import type { SealRecipe } from '../src/security/history-seal.ts';
import type { QuarantinedRecord } from './alert-log.ts';
import type { Placement } from './placement.ts';
import type { Divergence } from './replay.ts';
import type { StoredSnapshot } from './snapshot-store.ts';

/** What a worker is started with. */
export type WorkerSetup = { seal?: SealRecipe };

/**
 * A subject the worker has not seen yet, told once before its first record. `start`: the state
 * its entity's fold continues from when that is not the machine's initial one (a trusted snapshot,
 * a history replayed earlier); `divergence` when that state already stopped.
 */
export type SubjectIntro = {
  index: number;
  subject: string;
  kind: EntityKind;
  id: string;
  key: string;
  start?: { stored: StoredSnapshot; divergence?: Divergence };
};

export type ToWorker = { type: 'batch'; subjects: SubjectIntro[]; buffer: ArrayBuffer; length: number } | { type: 'end' };

/** An entity's fold as the worker ends it; `snapshot` is XState's persisted snapshot. */
export type FoldedEntity = {
  key: string;
  lastSeq: number;
  revision: number;
  placement?: Placement;
  divergence?: Divergence;
  snapshot: StoredSnapshot['snapshot'];
};

/** `folded`: one batch is done (the reader may send another), with the records it set aside. */
export type FromWorker = { type: 'folded'; quarantined: QuarantinedRecord[] } | { type: 'result'; entities: FoldedEntity[]; replayed: number };

const encoder = new TextEncoder();
const HEADER = 8 + 4 + 4 + 4;
/**
 * Room past `capacity` for the record that fills a batch: without it, that record doubled the
 * buffer and copied the whole batch, once per batch.
 */
const LAST_RECORD_ROOM = 64 * 1024;

/** One record as a worker reads it: `data` is a view into the batch, valid while it is handled. */
export type BatchRecord = { seq: number; subjectIndex: number; seal: string; data: Uint8Array };

export class BatchWriter {
  #bytes: Uint8Array;
  #view: DataView;
  #length = 0;

  /** `capacity`: the size a batch is sent at (full() says so); a larger record grows it. */
  constructor(private readonly capacity: number) {
    this.#bytes = new Uint8Array(capacity + LAST_RECORD_ROOM);
    this.#view = new DataView(this.#bytes.buffer);
  }

  get length(): number {
    return this.#length;
  }

  /** Whether the batch is worth sending: it reached its capacity. */
  get full(): boolean {
    return this.#length >= this.capacity;
  }

  add(seq: number, subjectIndex: number, seal: string | undefined, data: Uint8Array): void {
    const sealText = seal ?? '';
    // UTF-8 takes at most 3 bytes per UTF-16 unit; a seal is base64url, one byte per character.
    this.#reserve(HEADER + sealText.length * 3 + data.length);
    const view = this.#view;
    let at = this.#length;
    view.setFloat64(at, seq);
    view.setUint32(at + 8, subjectIndex);
    const { written } = encoder.encodeInto(sealText, this.#bytes.subarray(at + 16));
    view.setUint32(at + 12, written);
    at += 16 + written;
    view.setUint32(at, data.length);
    this.#bytes.set(data, at + 4);
    this.#length = at + 4 + data.length;
  }

  /** The batch so far, to be transferred; the writer starts an empty one. */
  take(): { buffer: ArrayBuffer; length: number } {
    const taken = { buffer: this.#bytes.buffer as ArrayBuffer, length: this.#length };
    this.#bytes = new Uint8Array(this.capacity + LAST_RECORD_ROOM);
    this.#view = new DataView(this.#bytes.buffer);
    this.#length = 0;
    return taken;
  }

  #reserve(bytes: number): void {
    const needed = this.#length + bytes;
    if (needed <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(needed, this.#bytes.length * 2));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }
}

/** Calls `each` for every record of a batch, in the order they were added, one reused object. */
export function readBatch(buffer: ArrayBuffer, length: number, each: (record: BatchRecord) => void): void {
  const view = new DataView(buffer, 0, length);
  const text = Buffer.from(buffer, 0, length);
  const record: BatchRecord = { seq: 0, subjectIndex: 0, seal: '', data: new Uint8Array(0) };
  let at = 0;
  while (at < length) {
    record.seq = view.getFloat64(at);
    record.subjectIndex = view.getUint32(at + 8);
    const sealLength = view.getUint32(at + 12);
    at += 16;
    record.seal = sealLength === 0 ? '' : text.toString('utf8', at, at + sealLength);
    at += sealLength;
    const dataLength = view.getUint32(at);
    at += 4;
    record.data = new Uint8Array(buffer, at, dataLength);
    at += dataLength;
    each(record);
  }
}
