// Hosts one EntityActor per entity on the alert stream: rebuilds them all from the stream at
// start (recover), creates new ones on first use, turns calls into tasks, and routes drivers'
// spontaneous events (faults) to the right actor. Only entities with history are kept: a call
// or a lookup for an id nobody created leaves nothing behind.
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { MACHINES, type MachineDefinition } from '../machines/index.ts';
import { ErrorCodes, OpstreamError } from '../src/domain/errors.ts';
import { redact } from '../src/domain/redaction.ts';
import type { OperationInfo } from '../src/domain/operation-info.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { AlertLog } from './alert-log.ts';
import type { Driver, EntityEvent, EntityRef } from './drivers/driver.ts';
import { EntityActor, STORE_RETRY_POLICY, type Appended, type CancelOutcome, type EntityActorDeps } from './entity-actor.ts';
import { commandTarget } from './job-commands.ts';
import { JobRunner } from './job-runner.ts';
import { claimTaskIdentity, jobScope } from './job-scope.ts';
import { DEFAULT_JOB_RETENTION_MS, TaskRegistry } from './task-registry.ts';
import type { JobContext } from '../machines/job.ts';
import { alertSubject, entityKey, EntityKinds, parseAlertSubject } from '../src/domain/subjects.ts';
import { recoverEntities, type RecoveryReport } from './recovery.ts';
import { reportCopiesOnDisks } from './copy-disk-reports.ts';
import { disksOf } from './drivers/disk-reports.ts';
import { isQuarantined } from './alert-log.ts';
import { Quarantine, type QuarantineSummary } from './quarantine.ts';
import { initialReplayState, replayOne, type ReplayState } from './replay.ts';
import type { HistorySeal } from '../src/security/history-seal.ts';
import { DEFAULT_HOST_ID, type SnapshotStore } from './snapshot-store.ts';
import { CheckpointTracker } from './checkpoint.ts';
import { retryPolicy, type RetryPolicy, type RetryPolicyInput } from '../src/domain/retry-policy.ts';

export type RuntimeOptions = {
  nc: NatsConnection;
  stream: string;
  driver: Driver;
  /** Where snapshots go; without it every recovery replays the whole stream. */
  snapshots?: SnapshotStore;
  /** Take an entity's snapshot every this many alerts (and at a clean shutdown). */
  snapshotEvery?: number;
  /**
   * How often, while the runtime follows the stream (observe()), lagging snapshots are saved and
   * a checkpoint written, so a crashed agent need not read the stream from its start; default
   * 5 s, 0: only at a clean stop.
   */
  checkpointEveryMs?: number;
  /** Names this agent's checkpoint in a bucket agents share; default 'local'. */
  hostId?: string;
  /** Seals every record this runtime writes and checks every one it reads (see history-seal.ts). */
  seal?: HistorySeal;
  /** Stamps alerts; tests pin it. Machines never read a clock. */
  now?: () => Date;
  logger?: Logger;
  /** How long ended jobs and tasks stay visible (VDSM's autodelete); default one hour. */
  jobRetentionMs?: number;
  /** Per work kind, how long its driver may report nothing before the operation fails as stalled. */
  stallTimeouts?: Record<string, number>;
  /** The same for every other work kind; default 10 minutes. */
  defaultStallMs?: number;
  /**
   * How driver events are retried until stored while the stream is away (default: 100 ms doubling
   * to 2 s). They never give up, so `maximumAttempts` must be 0.
   */
  storeRetry?: RetryPolicyInput;
  /**
   * How long a call may wait behind an entity's earlier work (a driver event retried while the
   * stream is away) before it fails with Unavailable and is dropped; default 10 s.
   */
  callDeadlineMs?: number;
};

/** Works that legitimately report nothing for long: a held connection, a job waiting on its steps. */
const NEVER_STALLS = new Set(['holdConnection', 'runJob', 'abortJob']);
export const DEFAULT_STALL_MS = 10 * 60 * 1000;
export const DEFAULT_CHECKPOINT_EVERY_MS = 5_000;
/** Snapshot saves a stop or a checkpoint keeps in flight at once. */
const SNAPSHOT_SAVES_IN_FLIGHT = 256;

export type CallResult = { taskId: string; seq: number };

/** A task in progress, with where its entity stands. */
export type RunningOperation = { task: TaskInfo; alertName: string; status: string; operationInfo: OperationInfo; seq: number };

const definitions = MACHINES as Partial<Record<string, MachineDefinition>>;

export class Runtime {
  readonly #actors = new Map<string, EntityActor>();
  readonly #loading = new Map<string, Promise<EntityActor>>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly quarantine: Quarantine;
  /** The highest stream sequence this runtime has inspected live, when it follows the stream. */
  #observed: number | undefined;
  /** Records seen live before recovery finished: inspected once every entity is in place. */
  readonly #earlyObservations: Array<[number, string]> = [];
  #recovered = false;
  #stopped = false;
  /** Every task within the retention, running or ended: jobs, idempotent retries, Task.getInfo. */
  readonly tasks: TaskRegistry;
  readonly #jobRunner: JobRunner;
  readonly #driver: Driver;
  readonly #sweep: NodeJS.Timeout;
  /** Which entities' stored snapshots lag behind the stream: what a checkpoint may claim. */
  readonly #checkpoints = new CheckpointTracker();
  #checkpointTimer: NodeJS.Timeout | undefined;
  #checkpointRun: Promise<void> | undefined;
  /** What the previous periodic checkpoint had inspected: snapshots lagging since then are saved next. */
  #checkpointObserved = 0;
  #checkpointWritten = 0;

  private constructor(
    /** The agent's connection; API feeds read the stream through it too. */
    readonly nc: NatsConnection,
    readonly alertLog: AlertLog,
    private readonly options: RuntimeOptions & { now: () => Date; logger: Logger; storeRetryPolicy: RetryPolicy },
  ) {
    this.quarantine = new Quarantine(options.logger);
    this.tasks = new TaskRegistry(options.jobRetentionMs ?? DEFAULT_JOB_RETENTION_MS, options.now);
    this.#sweep = setInterval(() => this.tasks.sweep(), 60_000);
    this.#sweep.unref();
    this.#jobRunner = new JobRunner({
      jobContext: (jobId) => this.#actors.get(entityKey({ kind: EntityKinds.Job, id: jobId }))?.snapshot.context as JobContext | undefined,
      tasks: this.tasks,
      runCommand: (command, { taskId, jobId, flowId }) => {
        const { ref, event } = commandTarget(command);
        return jobScope.run({ taskId, jobId, flowId }, () => this.call(ref, command.method, command.params, event));
      },
      cancelTask: (taskId) => this.cancelTask(taskId),
      logger: options.logger,
    });
    // A job's work is running its steps: the runtime does it, every other kind goes to the driver
    // — a copy of an image that is a VM's disk also reporting on that disk.
    const driver = reportCopiesOnDisks(options.driver, {
      disksReading: (imageId) => this.#disksReading(imageId),
      sink: (ref, event) => this.deliver(ref, event),
      logger: options.logger,
    });
    this.#driver = {
      start: (request, report, signal) => (request.kind === EntityKinds.Job ? this.#jobRunner : driver).start(request, report, signal),
    };
  }

  static async start(options: RuntimeOptions): Promise<Runtime> {
    const storeRetryPolicy = options.storeRetry === undefined ? STORE_RETRY_POLICY : retryPolicy(options.storeRetry);
    if (options.callDeadlineMs !== undefined && !(Number.isInteger(options.callDeadlineMs) && options.callDeadlineMs > 0)) {
      throw new RangeError(`invalid callDeadlineMs ${options.callDeadlineMs}: must be a positive whole number of milliseconds`);
    }
    if (storeRetryPolicy.maximumAttempts !== 0) {
      throw new RangeError('invalid storeRetry: maximumAttempts: must be 0 (driver events are retried until stored)');
    }
    const log = await AlertLog.open(options.nc, options.stream, options.seal);
    const runtime = new Runtime(options.nc, log, {
      ...options,
      now: options.now ?? (() => new Date()),
      logger: options.logger ?? createLogger('runtime'),
      storeRetryPolicy,
    });
    options.driver.connect?.((ref, event) => runtime.deliver(ref, event));
    return runtime;
  }

  /** The key records are sealed and checked with, for readers of the stream in this agent. */
  get seal(): HistorySeal | undefined {
    return this.options.seal;
  }

  /** True once recover() has rebuilt every entity; the API refuses calls until then. */
  get recovered(): boolean {
    return this.#recovered;
  }

  /**
   * Rebuilds every entity from snapshots and the stream, then resumes the operations that were
   * running when the agent stopped, each as its state declares.
   */
  async recover(): Promise<RecoveryReport> {
    const started = performance.now();
    if (this.options.snapshots) this.options.snapshots.quarantine = this.quarantine;
    const report = await recoverEntities(this.alertLog, this.options.snapshots, this.quarantine, this.options.logger, this.#hostId);
    for (const { ref, state, snapshotRevision, snapshotSeq } of report.entities) {
      this.#actors.set(entityKey(ref), this.#actor(ref, state, snapshotRevision));
      this.#trackRecovered(entityKey(ref), state, snapshotSeq);
    }
    // The task index (the last `retention` of alerts) is rebuilt in the background, so restart
    // time stays what entity recovery costs; job lookups, idempotent retries and resumed job
    // runners await `tasks.ready`.
    // A task still running is known at once, however long ago it started (a day-long rebalance).
    for (const { task, alertName, seq } of this.runningTasks()) this.tasks.seedRunning(task, alertName, seq, this.options.now());
    this.tasks.startLoading(this.nc, this.alertLog.stream, this.options.logger, this.options.seal);
    await Promise.all([...this.#actors.values()].map((actor) => actor.resume()));
    this.#recovered = true;
    for (const [seq, subject] of this.#earlyObservations.splice(0)) this.observe(seq, subject);
    this.#startCheckpoints();
    this.options.logger.info('recovered entities from the stream', {
      entities: report.entities.length,
      alertsReplayed: report.alertsReplayed,
      snapshotsUsed: report.snapshotsUsed,
      fromSeq: report.fromSeq,
      ms: Math.round(performance.now() - started),
    });
    return report;
  }

  /** The actor of an entity, its history replayed on first use (once, however many ask). */
  async entity(ref: EntityRef): Promise<EntityActor> {
    if (this.#stopped) throw new OpstreamError(ErrorCodes.Unavailable, 'the agent is shutting down');
    const key = entityKey(ref);
    const known = this.#actors.get(key);
    if (known) return known;
    let loading = this.#loading.get(key);
    if (!loading) {
      loading = this.#load(ref).finally(() => this.#loading.delete(key));
      this.#loading.set(key, loading);
    }
    return loading;
  }

  /** An entity that must already exist (getInfo, and calls other than create). */
  async existing(ref: EntityRef): Promise<EntityActor> {
    const actor = await this.entity(ref);
    if (!actor.exists) {
      this.#forgetIfEmpty(actor);
      throw new OpstreamError(ErrorCodes.NoSuchEntity, `${ref.kind} ${ref.id} does not exist`);
    }
    return actor;
  }

  /**
   * Runs `job` alone among the jobs of `key`: checks that span several entities (an image and
   * the layers on it) and the appends they allow happen in one order, so no interleaving of
   * calls — a JSON-RPC batch included — can slip between a check and its append.
   */
  async exclusive<T>(key: string, job: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(key) ?? Promise.resolve();
    const run = before.then(job, job);
    const settled = run.catch(() => undefined);
    this.#locks.set(key, settled);
    void settled.then(() => {
      if (this.#locks.get(key) === settled) this.#locks.delete(key);
    });
    return run;
  }

  /** What recovery, catch-ups and the stream's readers set aside (health detail shows it). */
  get quarantined(): QuarantineSummary {
    return this.quarantine.summary;
  }

  /**
   * Registers a call as a task: resolves with its id once the transition it causes is in the
   * stream. kwargs are redacted before anything is built from them.
   */
  async call(ref: EntityRef, methodName: string, kwargs: Record<string, unknown>, event: (task: TaskInfo) => EntityEvent): Promise<CallResult> {
    const { id, jobId, flowId } = claimTaskIdentity();
    const task: TaskInfo = { id: id ?? randomUUID(), methodName, kwargs: redact(kwargs) };
    if (jobId && jobId !== task.id) task.jobId = jobId;
    if (flowId) task.flowId = flowId;
    const actor = await this.entity(ref);
    try {
      const { seq } = await actor.request(event(task));
      return { taskId: task.id, seq };
    } finally {
      this.#forgetIfEmpty(actor);
    }
  }

  /**
   * Cancels one running task as its entity's current state declares (revert, roll forward or
   * refuse). A composite job's own task is the job: cancelling it aborts the job.
   */
  async cancelTask(taskId: string): Promise<CancelOutcome> {
    await this.tasks.ready;
    const record = this.tasks.get(taskId);
    const ref = record && parseAlertSubject(record.alertName);
    if (!record || !ref) throw new OpstreamError(ErrorCodes.NoSuchJob, `no task ${taskId} within the last ${Math.round(this.tasks.retentionMs / 60_000)} min`);
    if (record.status !== 'running') throw new OpstreamError(ErrorCodes.JobNotActive, `task ${taskId} already ended (${record.status})`);
    return (await this.existing(ref)).cancel(taskId);
  }

  /** A composite job's actor, or undefined when `jobId` is not one. */
  async jobActor(jobId: string): Promise<EntityActor | undefined> {
    const actor = await this.entity({ kind: EntityKinds.Job, id: jobId });
    return actor.exists ? actor : undefined;
  }

  /**
   * An event no call caused (a fault the hypervisor noticed, a VM's driver reporting on one of
   * its disks), durable when this resolves. Only kinds whose machine says so come into being this
   * way — and then only if the machine's first state takes the event; every other kind must exist.
   */
  async deliver(ref: EntityRef, event: EntityEvent): Promise<Appended> {
    // What a driver delivers has happened: it waits its turn however long the stream is away.
    if (!this.#definition(ref).createdByReports) return (await this.existing(ref)).request(event, { deadline: false });
    const actor = await this.entity(ref);
    try {
      return await actor.request(event, { deadline: false });
    } finally {
      this.#forgetIfEmpty(actor);
    }
  }

  /**
   * Every registered task not yet finished, failed or cancelled. An entity runs at most one
   * operation at a time, and its state — folded from the stream — holds it, so the running tasks
   * are read off the entities rather than kept in a second structure that could drift.
   */
  runningTasks(): RunningOperation[] {
    const running: RunningOperation[] = [];
    for (const actor of this.#actors.values()) {
      if (actor.divergence) continue;
      const { task } = actor.snapshot.context as { task: TaskInfo | null };
      if (!task) continue;
      const { status, operationInfo } = actor.view();
      running.push({ task, alertName: actor.subject, status, operationInfo, seq: actor.lastSeq });
    }
    return running;
  }

  /**
   * Told of every record the agent's live read of the stream sees, in order. A record this
   * runtime did not write is folded into its entity at once (a forgery makes it diverge now, not
   * at the next restart); one under no entity's subject is quarantined. A clean stop's checkpoint
   * then claims no more of the stream than was inspected here.
   */
  observe(seq: number, subject: string): void {
    this.#observed = Math.max(this.#observed ?? 0, seq);
    if (!this.#recovered) {
      this.#earlyObservations.push([seq, subject]);
      return;
    }
    const ref = parseAlertSubject(subject);
    if (!ref || !definitions[ref.kind]) {
      this.quarantine.add({ source: 'stream', seq, subject, reason: 'its subject is no entity’s alert name' });
      return;
    }
    // An entity this runtime holds nothing of is not adopted: another agent on the same stream
    // may own it (see the fleet issue). What this runtime holds, it folds.
    const key = entityKey(ref);
    const actor = this.#actors.get(key);
    if (actor) this.#checkpoints.mark(key, seq);
    else this.#checkpoints.uncovered(seq);
    actor?.observe(seq);
  }

  /** The loaded entities of one kind (after recover(): all of them), for checks across entities. */
  entitiesOf(kind: EntityRef['kind']): EntityActor[] {
    return [...this.#actors.values()].filter((actor) => actor.ref.kind === kind && actor.exists && !actor.divergence);
  }

  get entityCount(): number {
    return this.#actors.size;
  }

  /**
   * Stops all driver work and waits for transitions in flight. With snapshots on, saves every
   * changed entity and — when this runtime holds every entity — a checkpoint, so the next start
   * reads only what comes after.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#sweep);
    clearInterval(this.#checkpointTimer);
    this.tasks.stopLoading();
    const actors = [...this.#actors.values()];
    for (const actor of actors) actor.stop();
    await Promise.all(actors.map((actor) => actor.settle()));
    await this.#checkpointRun;
    const { snapshots } = this.options;
    if (!snapshots) return;
    const saved = await this.#saveSnapshots(actors);
    const complete = this.#recovered && saved.every(Boolean) && actors.every((actor) => !actor.divergence);
    if (!complete) return;
    // Followed live, the checkpoint covers what was inspected, not what someone added unseen.
    const last = await this.alertLog.streamLastSequence();
    await snapshots.saveCheckpoint(this.#checkpoints.checkpoint(this.#observed === undefined ? last : Math.min(last, this.#observed)), this.#hostId);
  }

  /**
   * Stops every actor where it stands — no settling, no snapshots, no checkpoint: what a crash
   * leaves behind. For tests that crash an agent inside one process.
   */
  halt(): void {
    this.#stopped = true;
    clearInterval(this.#sweep);
    clearInterval(this.#checkpointTimer);
    this.tasks.stopLoading();
    for (const actor of this.#actors.values()) actor.stop();
  }

  #actor(ref: EntityRef, state: ReplayState, snapshotRevision = 0): EntityActor {
    const definition = definitions[ref.kind];
    if (!definition) throw new OpstreamError(ErrorCodes.NoSuchEntity, `no machine for entity kind ${ref.kind}`);
    const { snapshots, snapshotEvery, now, logger, stallTimeouts, defaultStallMs, storeRetryPolicy, callDeadlineMs } = this.options;
    const deps: EntityActorDeps = {
      definition,
      log: this.alertLog,
      driver: this.#driver,
      now,
      logger,
      quarantine: this.quarantine,
      snapshots: snapshots ? { store: snapshots, every: snapshotEvery ?? 50 } : undefined,
      storeRetry: storeRetryPolicy,
      callDeadlineMs,
      stallAfterMs: (work) => stallTimeouts?.[work] ?? (NEVER_STALLS.has(work) ? undefined : (defaultStallMs ?? DEFAULT_STALL_MS)),
    };
    const actor = new EntityActor(ref, deps, state, snapshotRevision);
    const key = entityKey(ref);
    actor.onTransition((appended) => {
      this.tasks.observe(appended);
      this.#checkpoints.mark(key, appended.seq);
    });
    return actor;
  }

  get #hostId(): string {
    return this.options.hostId ?? DEFAULT_HOST_ID;
  }

  /** What recovery folded beyond an entity's stored snapshot is not covered by one yet. */
  #trackRecovered(key: string, state: ReplayState, snapshotSeq: number): void {
    if (state.lastSeq <= snapshotSeq && !state.divergence) return;
    this.#checkpoints.mark(key, snapshotSeq + 1);
    this.#checkpoints.mark(key, Math.max(state.lastSeq, snapshotSeq + 1));
  }

  /** Saves the actor's snapshot if it changed; true when the store holds one covering its state. */
  async #saveSnapshot(actor: EntityActor): Promise<boolean> {
    // The save takes the state as it is now, before its first await: this is the sequence it covers.
    const seq = actor.lastSeq;
    const diverged = actor.divergence !== undefined;
    const saved = await actor.snapshotIfChanged();
    if (saved && !diverged) this.#checkpoints.saved(entityKey(actor.ref), seq);
    return saved;
  }

  /**
   * Saves many snapshots, a bounded number at a time: 100,000 puts at once outran JetStream's
   * publish timeout, every save failed, and a clean stop wrote no checkpoint.
   */
  async #saveSnapshots(actors: EntityActor[]): Promise<boolean[]> {
    const saved: boolean[] = [];
    let next = 0;
    const worker = async () => {
      while (next < actors.length) {
        const index = next;
        next += 1;
        saved[index] = await this.#saveSnapshot(actors[index] as EntityActor);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SNAPSHOT_SAVES_IN_FLIGHT, actors.length) }, worker));
    return saved;
  }

  #startCheckpoints(): void {
    const every = this.options.checkpointEveryMs ?? DEFAULT_CHECKPOINT_EVERY_MS;
    if (!this.options.snapshots || every <= 0 || this.#stopped) return;
    this.#checkpointTimer = setInterval(() => {
      this.#checkpointRun ??= this.checkpointNow()
        .then(() => undefined)
        .catch((error: unknown) => this.options.logger.warn('could not write a checkpoint', { error: String(error) }))
        .finally(() => {
          this.#checkpointRun = undefined;
        });
    }, every);
    this.#checkpointTimer.unref();
  }

  /**
   * One periodic checkpoint: saves the snapshots that have lagged since the previous one (each
   * entity at most once a period), then writes the highest checkpoint they make sound. Only while
   * the runtime follows the stream: without observe() it cannot know what others appended.
   * Resolves with the checkpoint written (0: none).
   */
  async checkpointNow(): Promise<number> {
    const { snapshots } = this.options;
    const observed = this.#observed;
    if (!snapshots || observed === undefined || !this.#recovered || this.#stopped) return 0;
    const lagging = this.#checkpoints.laggingAt(this.#checkpointObserved);
    this.#checkpointObserved = observed;
    const actors = lagging.map((key) => this.#actors.get(key)).filter((actor): actor is EntityActor => actor !== undefined && !actor.divergence);
    await this.#saveSnapshots(actors);
    const checkpoint = this.#checkpoints.checkpoint(observed);
    if (checkpoint <= this.#checkpointWritten || this.#stopped) return 0;
    await snapshots.saveCheckpoint(checkpoint, this.#hostId);
    this.#checkpointWritten = checkpoint;
    return checkpoint;
  }

  /** The disks that are image `imageId` in VMs that hold them (any state but Down). */
  #disksReading(imageId: string): Array<{ vmId: string; diskId: string }> {
    return this.entitiesOf(EntityKinds.VM).flatMap((actor) => {
      if (actor.view().status === 'Down') return [];
      const disks = disksOf((actor.snapshot.context as { params?: unknown }).params);
      return disks.filter((disk) => disk.imageId === imageId).map(({ diskId }) => ({ vmId: actor.ref.id, diskId }));
    });
  }

  /** A refused create, a lookup of an unknown id: nothing of it is worth keeping. */
  #forgetIfEmpty(actor: EntityActor): void {
    const key = entityKey(actor.ref);
    if (!actor.exists && actor.idle && this.#actors.get(key) === actor) {
      this.#actors.delete(key);
      actor.stop();
    }
  }

  async #load(ref: EntityRef): Promise<EntityActor> {
    // Once recovered, every entity with history is in #actors (observe() adds what others write):
    // an unknown id has none, and reading the stream for it would let any caller make the server
    // build a consumer per id. (Should a record race this, the append guard says so: Conflict.)
    if (!this.#recovered) return this.#loadFromStream(ref);
    const actor = this.#actor(ref, initialReplayState(this.#definition(ref), ref.id));
    this.#actors.set(entityKey(ref), actor);
    return actor;
  }

  #definition(ref: EntityRef): MachineDefinition {
    const definition = definitions[ref.kind];
    if (!definition) throw new OpstreamError(ErrorCodes.NoSuchEntity, `no machine for entity kind ${ref.kind}`);
    return definition;
  }

  async #loadFromStream(ref: EntityRef): Promise<EntityActor> {
    const definition = this.#definition(ref);
    const subject = alertSubject(ref.kind, ref.id);
    let state = initialReplayState(definition, ref.id);
    for await (const record of this.alertLog.read(subject)) {
      if (isQuarantined(record)) this.quarantine.add({ source: 'stream', ...record });
      state = replayOne(definition, state, record);
    }
    if (state.divergence) {
      this.options.logger.error('history diverges from the machine; refusing to own the entity', { subject, divergence: state.divergence });
    }
    const actor = this.#actor(ref, state);
    this.#actors.set(entityKey(ref), actor);
    return actor;
  }
}
