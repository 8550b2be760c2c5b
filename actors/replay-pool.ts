// Recovery's fold on worker threads: the reading thread only reads and routes, each record to the
// worker that holds its entity (a hash of the entity's key), packed into batches it transfers
// (replay-batch.ts); the workers judge and fold (replay-worker.ts) and hand back each entity's
// state. One thread that checks every seal and folds every record cannot keep up with the read:
// judging and folding cost about twice what reading does.
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { MachineDefinition } from '../machines/index.ts';
import { sealOf, type StoredMessage } from '../src/nats/alert-record.ts';
import { sealRecipe, type HistorySeal } from '../src/security/history-seal.ts';
import { entityKey } from '../src/domain/subjects.ts';
import type { QuarantinedRecord } from './alert-log.ts';
import type { EntityRef } from './drivers/driver.ts';
import { BatchWriter, type FoldedEntity, type FromWorker, type SubjectIntro, type ToWorker, type WorkerSetup } from './replay-batch.ts';
import { ReplayFolds } from './replay-fold.ts';
import { restoreReplayState, type ReplayState } from './replay.ts';

export type ReplayPoolOptions = {
  /** Worker threads; default one per core, at most 4, none on one core. Given, it is used even on one core. */
  workers?: number;
  /** The fewest records to fold worth starting threads for; default 20,000. */
  minRecords?: number;
};

/** The pool's threads failed (not the stream, not a record): the same fold can still run in one thread. */
export class ReplayPoolError extends Error {
  override name = 'ReplayPoolError';
}

/** What the pool needs of an entity of recovery. */
export type PoolEntity = { ref: EntityRef; definition: MachineDefinition; state: ReplayState };

const DEFAULT_MIN_RECORDS = 20_000;
const MAX_WORKERS = 4;
/** A batch goes when it holds this much: large enough that a message per batch costs nothing. */
const BATCH_BYTES = 256 * 1024;
/** Batches sent to a worker and not yet folded: the reader waits beyond that instead of queueing the stream in memory. */
const IN_FLIGHT = 4;

/**
 * A pool for a tail of up to `records` records, or undefined when replaying in this thread is the
 * better choice: too few records to pay for starting threads, one core, or a seal that cannot be
 * rebuilt in another thread (then the workers could not check what this thread would).
 */
export function replayPoolFor(
  records: number,
  options: ReplayPoolOptions | false | undefined,
  seal: { sealed: boolean; seal: HistorySeal | undefined },
  onQuarantined: (record: QuarantinedRecord) => void,
): ReplayPool | undefined {
  const minRecords = options === false ? Infinity : (options?.minRecords ?? DEFAULT_MIN_RECORDS);
  if (records < minRecords) return undefined;
  const workers = options ? (options.workers ?? defaultWorkers()) : defaultWorkers();
  if (workers < 1) return undefined;
  script ??= workerScript();
  if (!script) return undefined;
  // The workers must check exactly what the log would: a seal where the log has one, none where not.
  if (seal.sealed !== (seal.seal !== undefined)) return undefined;
  if (seal.seal && !sealRecipe(seal.seal)) return undefined;
  return new ReplayPool({ workers, minRecords, seal: seal.seal, onQuarantined });
}

/**
 * A worker per core: the reading thread mostly waits for them. On two cores, two workers beat one
 * (1M alerts: 0.26–0.29× the raw read against 0.23–0.25×) unless the machine is busy otherwise.
 */
const defaultWorkers = () => (availableParallelism() > 1 ? Math.min(availableParallelism(), MAX_WORKERS) : 0);

/** A subject met by the pool, and the entity whose state its fold starts from. */
type Introduction = { index: number; subject: string; entity: PoolEntity };
type Batch = { introduced: Introduction[]; buffer: ArrayBuffer; length: number };

/** One worker's share, and what is on its way to it. */
type Lane = {
  worker?: Worker;
  batch: BatchWriter;
  /** Subjects met since the last batch went: told with the next one. */
  introduced: Introduction[];
  subjects: number;
  /** Batches kept until the pool starts its threads, or folds here at the end. */
  pending: Batch[];
  inFlight: number;
  result?: { entities: FoldedEntity[]; replayed: number };
};

/**
 * Routes the tail's records to the worker of their entity. Threads start only once `minRecords`
 * records were routed (a read where snapshots cover nearly everything starts none); until then
 * batches are kept, and a tail that stays shorter is folded here, by the same code, at the end.
 */
export class ReplayPool {
  readonly workers: number;
  readonly #minRecords: number;
  readonly #seal: HistorySeal | undefined;
  readonly #onQuarantined: (record: QuarantinedRecord) => void;
  readonly #lanes: Lane[];
  /** Per subject, its lane and the index its worker knows it by. */
  readonly #routes = new Map<string, { lane: Lane; index: number }>();
  #routed = 0;
  #started = false;
  #failure: Error | undefined;
  #waiters: Array<() => void> = [];

  constructor(options: { workers: number; minRecords: number; seal: HistorySeal | undefined; onQuarantined: (record: QuarantinedRecord) => void }) {
    this.workers = options.workers;
    this.#minRecords = options.minRecords;
    this.#seal = options.seal;
    this.#onQuarantined = options.onQuarantined;
    this.#lanes = Array.from({ length: options.workers }, () => ({ batch: new BatchWriter(BATCH_BYTES), introduced: [], subjects: 0, pending: [], inFlight: 0 }));
  }

  /** Whether threads were started (false: the tail was folded in this thread). */
  get started(): boolean {
    return this.#started;
  }

  /**
   * Hands one record of `entity` (stored under `subject`) to its worker. The entity's state here
   * is where its fold starts, so it must not change until finish(). Returns a promise when the
   * worker is behind: the caller awaits it before routing more.
   */
  route(subject: string, entity: PoolEntity, message: StoredMessage): Promise<void> | undefined {
    if (this.#failure) throw this.#failure;
    let route = this.#routes.get(subject);
    if (!route) route = this.#introduce(subject, entity);
    const { lane } = route;
    lane.batch.add(message.seq, route.index, sealOf(message), message.data);
    this.#routed += 1;
    if (!this.#started && this.#routed >= this.#minRecords) this.#start();
    if (!lane.batch.full) return undefined;
    if (!this.#started) {
      lane.pending.push(this.#take(lane));
      return undefined;
    }
    this.#send(lane, this.#take(lane));
    return lane.inFlight >= IN_FLIGHT ? this.#until(() => lane.inFlight < IN_FLIGHT) : undefined;
  }

  /**
   * Folds what is left, and gives each folded entity's state by its key, and how many records
   * were folded.
   */
  async finish(definitionOf: (key: string) => MachineDefinition | undefined): Promise<{ states: Map<string, ReplayState>; replayed: number }> {
    if (this.#failure) throw this.#failure;
    return this.#started ? this.#finishOnWorkers(definitionOf) : this.#finishHere();
  }

  /** Stops every worker, whatever state they are in; always called, after finish() or a failure. */
  async terminate(): Promise<void> {
    this.#failure ??= new Error('the replay pool was terminated');
    await Promise.all(this.#lanes.flatMap((lane) => (lane.worker ? [lane.worker.terminate()] : [])));
  }

  /** A short tail: the kept batches folded in this thread, from the entities' states as they are. */
  #finishHere(): { states: Map<string, ReplayState>; replayed: number } {
    const states = new Map<string, ReplayState>();
    let replayed = 0;
    for (const lane of this.#lanes) {
      const folds = new ReplayFolds(this.#seal);
      for (const { introduced, buffer, length } of [...lane.pending, this.#take(lane)]) {
        for (const { index, subject, entity } of introduced) folds.meet(index, subject, entityKey(entity.ref), entity.definition, () => entity.state);
        for (const record of folds.fold(buffer, length)) this.#onQuarantined(record);
      }
      lane.pending = [];
      for (const { key, state } of folds.entities()) states.set(key, state);
      replayed += folds.replayed;
    }
    return { states, replayed };
  }

  async #finishOnWorkers(definitionOf: (key: string) => MachineDefinition | undefined): Promise<{ states: Map<string, ReplayState>; replayed: number }> {
    const started = this.#lanes.filter((lane) => lane.subjects > 0);
    for (const lane of started) {
      if (lane.batch.length > 0 || lane.introduced.length > 0) this.#send(lane, this.#take(lane));
      (lane.worker as Worker).postMessage({ type: 'end' } satisfies ToWorker);
    }
    await this.#until(() => started.every((lane) => lane.result));
    const states = new Map<string, ReplayState>();
    let replayed = 0;
    for (const lane of started) {
      const result = lane.result as NonNullable<Lane['result']>;
      replayed += result.replayed;
      for (const folded of result.entities) {
        const definition = definitionOf(folded.key);
        if (!definition) throw new Error(`a replay worker folded ${folded.key}, which recovery does not hold`);
        // As a trusted snapshot is restored: XState's persisted snapshot resolved against today's machine.
        const { machine, version } = definition;
        const restored = restoreReplayState(definition, {
          machine: { id: machine.id, version },
          seq: folded.lastSeq,
          revision: folded.revision,
          snapshot: folded.snapshot,
          ...(folded.placement ? { placement: folded.placement } : {}),
        });
        states.set(folded.key, folded.divergence ? { ...restored, divergence: folded.divergence } : restored);
      }
    }
    return { states, replayed };
  }

  #introduce(subject: string, entity: PoolEntity): { lane: Lane; index: number } {
    const lane = this.#lanes[hash(entityKey(entity.ref)) % this.#lanes.length] as Lane;
    const route = { lane, index: lane.subjects };
    lane.subjects += 1;
    lane.introduced.push({ index: route.index, subject, entity });
    this.#routes.set(subject, route);
    return route;
  }

  #take(lane: Lane): Batch {
    const { buffer, length } = lane.batch.take();
    const introduced = lane.introduced;
    lane.introduced = [];
    return { introduced, buffer, length };
  }

  /** Enough records to be worth threads: every lane with work gets its worker and what it kept. */
  #start(): void {
    this.#started = true;
    for (const lane of this.#lanes) {
      if (lane.subjects === 0) continue;
      lane.worker ??= this.#spawn(lane);
      for (const batch of lane.pending) this.#send(lane, batch);
      lane.pending = [];
    }
  }

  #send(lane: Lane, { introduced, buffer, length }: Batch): void {
    lane.worker ??= this.#spawn(lane);
    const subjects = introduced.map(({ index, subject, entity }) => introduction(index, subject, entity));
    lane.inFlight += 1;
    lane.worker.postMessage({ type: 'batch', subjects, buffer, length } satisfies ToWorker, [buffer]);
  }

  #spawn(lane: Lane): Worker {
    const recipe = this.#seal && sealRecipe(this.#seal);
    const worker = startWorker(recipe ? { seal: recipe } : {});
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'folded') {
        lane.inFlight -= 1;
        for (const record of message.quarantined) this.#onQuarantined(record);
      } else {
        lane.result = { entities: message.entities, replayed: message.replayed };
      }
      this.#wake();
    });
    worker.on('error', (error) => this.#fail(new ReplayPoolError(`a replay worker failed: ${error.message}`, { cause: error })));
    worker.on('messageerror', (error) => this.#fail(new ReplayPoolError(`a replay worker's message could not be read: ${error.message}`, { cause: error })));
    worker.on('exit', (code) => {
      if (!lane.result) this.#fail(new ReplayPoolError(`a replay worker stopped (exit code ${code}) before it ended its fold`));
    });
    return worker;
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves once `done` holds; rejects as soon as a worker fails. */
  async #until(done: () => boolean): Promise<void> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      if (done()) return;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

/**
 * The worker beside this module, in its own form: .js from dist, .ts from the sources. A worker
 * gets no loader hooks from its parent (Node 20 does not hand them over, vitest's transform does
 * not reach it), so the TypeScript form registers tsx first — a devDependency dist never needs.
 * Undefined when sources run without tsx at hand: recovery then folds in its own thread.
 */
const workerScript = (): { script: URL | string; eval: boolean } | undefined => {
  const extension = extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./replay-worker${extension}`, import.meta.url);
  if (extension !== '.ts') return { script: entry, eval: false };
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx/esm/api');
  } catch {
    return undefined;
  }
  return { script: `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`, eval: true };
};
let script: ReturnType<typeof workerScript> | null = null;

function startWorker(setup: WorkerSetup): Worker {
  script ??= workerScript();
  if (!script) throw new ReplayPoolError('replay workers cannot start: the TypeScript sources run without tsx');
  return new Worker(script.script, { eval: script.eval, workerData: setup });
}

/** How a worker learns a subject: an entity restored from a snapshot, or replayed before the tail, continues from there. */
function introduction(index: number, subject: string, { ref, definition, state }: PoolEntity): SubjectIntro {
  const intro: SubjectIntro = { index, subject, kind: ref.kind, id: ref.id, key: entityKey(ref) };
  if (state.lastSeq === 0 && state.revision === 0 && !state.divergence) return intro;
  intro.start = {
    stored: {
      machine: { id: definition.machine.id, version: definition.version },
      seq: state.lastSeq,
      revision: state.revision,
      snapshot: definition.machine.getPersistedSnapshot(state.snapshot) as unknown as FoldedEntity['snapshot'],
      ...(state.placement ? { placement: state.placement } : {}),
    },
    ...(state.divergence ? { divergence: state.divergence } : {}),
  };
  return intro;
}

/** FNV-1a: cheap, and spreads entity keys that differ in one digit over the workers. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
