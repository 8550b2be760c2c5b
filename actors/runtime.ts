// Hosts one EntityActor per entity on the alert stream: rebuilds them all from the stream at
// start (recover), creates new ones on first use, turns calls into tasks, and routes drivers'
// spontaneous events (faults) to the right actor. Only entities with history are kept: a call
// or a lookup for an id nobody created leaves nothing behind.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { MACHINES, type MachineDefinition } from '../machines/index.ts';
import { ErrorCodes, OpstreamError } from '../src/domain/errors.ts';
import { redact } from '../src/domain/redaction.ts';
import type { OperationInfo } from '../src/domain/operation-info.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import type { Alert } from '../src/domain/alert.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { AlertLog } from './alert-log.ts';
import type { Driver, EntityEvent, EntityRef } from './drivers/driver.ts';
import { EntityActor, STORE_RETRY_POLICY, type Appended, type CancelOutcome, type EntityActorDeps } from './entity-actor.ts';
import { commandTarget } from './job-commands.ts';
import { JobRunner } from './job-runner.ts';
import { claimTaskIdentity, type JobScope } from './job-scope.ts';
import { DEFAULT_JOB_RETENTION_MS, TaskRegistry } from './task-registry.ts';
import type { JobContext } from '../machines/job.ts';
import { alertSubject, entityKey, EntityKinds, parentOf, parseAlertSubject } from '../src/domain/subjects.ts';
import type { FleetLink } from './placement.ts';
import { recoverEntities, type RecoveryReport } from './recovery.ts';
import { reportCopiesOnDisks } from './copy-disk-reports.ts';
import { handOverMigrations } from './migration-hand-over.ts';
import { disksOf } from './drivers/disk-reports.ts';
import { isQuarantined, type HistoryRecord } from './alert-log.ts';
import { Quarantine, type QuarantineSummary } from './quarantine.ts';
import { initialReplayState, replayOne, type ReplayState } from './replay.ts';
import type { HistorySeal } from '../src/security/history-seal.ts';
import { DEFAULT_HOST_ID, type SnapshotStore } from './snapshot-store.ts';
import type { ImageRef } from './snapshot-image.ts';
import { CheckpointTracker } from './checkpoint.ts';
import { StallWatch } from './stall-watch.ts';
import { retryPolicy, type RetryPolicy, type RetryPolicyInput } from '../src/domain/retry-policy.ts';
import { untilReachable } from '../src/nats/errors.ts';

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
  /**
   * The host this runtime writes for (see placement.ts): every alert names it, and only entities it
   * owns are changed and driven here; the others are mirrors kept current from the shared read.
   * Without it the runtime is a fleet of one and owns everything. It also names this agent's
   * checkpoint in the bucket agents share (default 'local').
   */
  hostId?: string;
  /** The fleet's view of its hosts; without it no host is ever lost or live but this one. */
  fleet?: FleetLink;
};

/**
 * Works that legitimately report nothing for long: a held connection, a job waiting on its steps,
 * the watch over a settled VM (it speaks only when the VM changes; a stall timer would abort it
 * after ten quiet minutes and keep one timer per running VM).
 */
const NEVER_STALLS = new Set(['holdConnection', 'runJob', 'abortJob', 'watchRunning', 'watchPaused']);
export const DEFAULT_STALL_MS = 10 * 60 * 1000;
export const DEFAULT_CHECKPOINT_EVERY_MS = 5_000;
/** Snapshot saves a stop or a checkpoint keeps in flight at once. */
const SNAPSHOT_SAVES_IN_FLIGHT = 256;

export type CallResult = { taskId: string; seq: number };

/** A task in progress, with where its entity stands. */
/** `hostId`: the host that runs the operation (its entity's owner); none outside a fleet. */
export type RunningOperation = { task: TaskInfo; alertName: string; status: string; operationInfo: OperationInfo; seq: number; hostId?: string };

const definitions = MACHINES as Partial<Record<string, MachineDefinition>>;

export class Runtime {
  readonly #actors = new Map<string, EntityActor>();
  readonly #loading = new Map<string, Promise<EntityActor>>();
  readonly #locks = new Map<string, Promise<unknown>>();
  /** Hosts this runtime declared lost (and their lease epoch): their late records get fenced too. */
  readonly #lostHosts = new Map<string, { epoch: number; since: number }>();
  readonly quarantine: Quarantine;
  /** The highest stream sequence this runtime has inspected live, when it follows the stream. */
  #observed: number | undefined;
  /** Records seen live before recovery finished: inspected once every entity is in place. */
  readonly #earlyObservations: Array<[number, string, (() => HistoryRecord) | undefined]> = [];
  #recovered = false;
  #stopped = false;
  /** Every task within the retention, running or ended: jobs, idempotent retries, Task.getInfo. */
  readonly tasks: TaskRegistry;
  readonly #jobRunner: JobRunner;
  readonly #driver: Driver;
  readonly #sweep: NodeJS.Timeout;
  readonly #stalls = new StallWatch();
  readonly #deps = new Map<string, EntityActorDeps>();
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
        return this.call(ref, command.method, command.params, event, { taskId, jobId, flowId });
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
    const { hostId, fleet } = options;
    const vmsMove = hostId !== undefined && fleet ? handOverMigrations(driver, { hostId, isLive: (host) => fleet.isLive(host) }) : driver;
    this.#driver = {
      start: (request, report, signal) => (request.kind === EntityKinds.Job ? this.#jobRunner : vmsMove).start(request, report, signal),
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
    // Nothing is kept from a read that failed half-way: a stream that is between leaders (a cluster
    // just restarted) is read again from the start until it answers.
    const report = await untilReachable('recovering entities from the stream', () => recoverEntities(this.alertLog, this.options.snapshots, this.quarantine, this.options.logger, this.#hostId, { seal: this.options.seal }), {
      tries: 20,
      onRetry: (error) => this.options.logger.warn('the stream did not answer during recovery; reading it again', { error: String(error) }),
    });
    for (const { ref, state, snapshotRevision, snapshotSeq, unsaved } of report.entities) {
      // A snapshot the KV may not hold counts as none: the entity is saved again before a checkpoint passes it.
      this.#actors.set(entityKey(ref), this.#actor(ref, state, unsaved ? 0 : snapshotRevision));
      this.#trackRecovered(entityKey(ref), state, unsaved ? 0 : snapshotSeq);
    }
    // The task index (the last `retention` of alerts) is rebuilt in the background, so restart
    // time stays what entity recovery costs; job lookups, idempotent retries and resumed job
    // runners await `tasks.ready`.
    // A task still running is known at once, however long ago it started (a day-long rebalance).
    for (const { task, alertName, seq } of this.runningTasks()) this.tasks.seedRunning(task, alertName, seq, this.options.now());
    this.tasks.startLoading(this.nc, this.alertLog.stream, this.options.logger, this.options.seal);
    await Promise.all([...this.#actors.values()].map((actor) => actor.resume()));
    this.#recovered = true;
    for (const [seq, subject, decode] of this.#earlyObservations.splice(0)) this.#follow(seq, subject, decode ?? withoutBody(seq, subject));
    this.#startCheckpoints();
    await this.takeBack();
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
    return this.#loadOnce(ref, () => this.#load(ref));
  }

  /** The held actor of `ref`, or the one `load` builds — once, however many ask meanwhile. */
  #loadOnce(ref: EntityRef, load: () => Promise<EntityActor>): Promise<EntityActor> {
    const key = entityKey(ref);
    const known = this.#actors.get(key);
    if (known) return Promise.resolve(known);
    let loading = this.#loading.get(key);
    if (!loading) {
      loading = load().finally(() => this.#loading.delete(key));
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
  async call(ref: EntityRef, methodName: string, kwargs: Record<string, unknown>, event: (task: TaskInfo) => EntityEvent, job?: JobScope): Promise<CallResult> {
    const { id, jobId, flowId } = claimTaskIdentity(job);
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
      const { hostId } = actor;
      running.push({ task, alertName: actor.subject, status, operationInfo, seq: actor.lastSeq, ...(hostId === undefined ? {} : { hostId }) });
    }
    return running;
  }

  /**
   * Told of every record the agent's live read of the stream sees, in order, with the record at
   * hand (`decode` parses and checks it, only when needed). A record this runtime did not write
   * is folded into its entity at once: a mirror stays current, and a forgery makes its entity
   * diverge now, not at the next restart. An entity not seen yet, created by another host, is
   * mirrored from its first record; a record that is not a sealed alert creates nothing (a ghost
   * is not adopted), and one under no entity's subject is quarantined. A clean stop's checkpoint
   * then claims no more of the stream than was inspected here.
   */
  observe(seq: number, subject: string, decodeAlert: () => Alert | string): void {
    this.#follow(seq, subject, () => {
      const decoded = decodeAlert();
      return typeof decoded === 'string' ? { seq, subject, reason: decoded } : { seq, alert: decoded };
    });
  }

  #follow(seq: number, subject: string, decode: () => HistoryRecord): void {
    this.#observed = Math.max(this.#observed ?? 0, seq);
    if (!this.#recovered) {
      // A long recovery under a busy fleet must not hold every message seen meanwhile: past a
      // bound only where they are is kept, and their entities read them from the stream.
      this.#earlyObservations.push([seq, subject, this.#earlyObservations.length < MAX_EARLY_BODIES ? decode : undefined]);
      return;
    }
    const ref = parseAlertSubject(subject);
    if (!ref || !definitions[ref.kind]) {
      this.quarantine.add({ source: 'stream', seq, subject, reason: 'its subject is no entity’s alert name' });
      return;
    }
    const key = entityKey(ref);
    const held = this.#actors.get(key);
    // Every record is some held entity's (a mirror's, if another host's) and marks its snapshot
    // as behind, for the periodic checkpoint; a ghost's record is no entity's and holds nothing.
    if (held) {
      this.#checkpoints.mark(key, seq);
      held.observe(seq, decode);
      if (this.#lostHosts.size > 0) this.#fenceIfLost(held);
      return;
    }
    const loading = this.#loading.get(key);
    if (loading) {
      this.#checkpoints.mark(key, seq);
      void loading.then((actor) => actor.observe(seq, decode), () => undefined);
      return;
    }
    // A record of no held entity: no snapshot of this agent covers it, stopping or not.
    if (this.#stopped) {
      this.#checkpoints.uncovered(seq);
      return;
    }
    const record = decode();
    if (isQuarantined(record)) {
      // Seen without its body (a long recovery): the entity's records are read from the stream.
      if (record.reason === WITHOUT_BODY) {
        this.#checkpoints.mark(key, seq);
        void this.#loadOnce(ref, () => this.#loadFromStream(ref));
      }
      return;
    }
    const mirror = this.#actor(ref, initialReplayState(this.#definition(ref), ref.id));
    this.#actors.set(key, mirror);
    this.#checkpoints.mark(key, seq);
    mirror.observe(seq, () => record);
    if (this.#lostHosts.size > 0) this.#fenceIfLost(mirror);
  }

  /**
   * The fleet declared `hostId` lost at lease `epoch`. Every agent remembers it (late records of
   * the host's entities are fenced as they arrive, and a sweep finishes what a fencing agent that
   * died left undone); `fenceNow` — this agent won the declaration, or its winner is gone too —
   * records HOST_LOST on every entity the host owns, a few at a time, at once.
   */
  async hostLost(hostId: string, epoch: number, fenceNow: boolean): Promise<number> {
    if (this.options.hostId === undefined || hostId === this.options.hostId) return 0;
    this.#lostHosts.set(hostId, { epoch, since: performance.now() });
    return fenceNow ? this.#fenceAll(hostId) : 0;
  }

  /** Fences what lost hosts still own once they have been lost for `graceMs` (their fencer may be gone). */
  async sweepLostHosts(graceMs: number): Promise<number> {
    let fenced = 0;
    for (const [hostId, { since }] of this.#lostHosts) {
      if (performance.now() - since >= graceMs) fenced += await this.#fenceAll(hostId);
    }
    return fenced;
  }

  async #fenceAll(hostId: string): Promise<number> {
    const owned = [...this.#actors.values()].filter((actor) => actor.placement?.hostId === hostId && this.#ownedByLostHost(actor));
    let fenced = 0;
    await inBatches(owned, 32, async (actor) => {
      if (await this.#fence(actor)) fenced += 1;
    });
    if (fenced) this.options.logger.warn('fenced the entities of a lost host', { hostId, epoch: this.#lostHosts.get(hostId)?.epoch, entities: fenced });
    return fenced;
  }

  /** The host is up again (a new lease): what it owns is its own to take back, not ours to fence. */
  hostReturned(hostId: string): void {
    this.#lostHosts.delete(hostId);
  }

  /** Whether `actor` still needs a HOST_LOST of a host this runtime knows is lost (see fenceableFor). */
  #ownedByLostHost(actor: EntityActor): boolean {
    const hostId = actor.placement?.hostId;
    const lost = hostId === undefined ? undefined : this.#lostHosts.get(hostId);
    return hostId !== undefined && lost !== undefined && actor.fenceableFor(hostId, lost.epoch);
  }

  /**
   * Records HOST_LOST on one entity of a lost host. Losing the append race means the host (or
   * someone) wrote first — its last write before it went silent, landing late: fold it and try
   * again, so no entity of a lost host stays unfenced behind one late record.
   */
  async #fence(actor: EntityActor): Promise<boolean> {
    const by = this.options.hostId;
    for (let attempt = 0; by !== undefined && attempt < 5 && this.#ownedByLostHost(actor) && !this.#stopped; attempt += 1) {
      const hostId = actor.placement?.hostId as string;
      try {
        return (await actor.fenceLostHost(hostId, this.#lostHosts.get(hostId)?.epoch ?? 0, by)) !== undefined;
      } catch (error) {
        this.options.logger.info('an entity of a lost host moved before it was fenced; folding and trying again', { subject: actor.subject, error: String(error) });
        await actor.settle();
      }
    }
    return false;
  }

  /** A record of a lost host's entity that arrived after the host was fenced (or a new entity of it). */
  #fenceIfLost(actor: EntityActor): void {
    void actor.settle().then(() => (this.#ownedByLostHost(actor) ? this.#fence(actor) : false));
  }

  /**
   * This host is back (a restart, or a new lease after it was fenced): record HOST_RETURNED on
   * whatever the fleet fenced of it, and resume each as a restart does.
   */
  async takeBack(): Promise<number> {
    const hostId = this.options.hostId;
    const epoch = this.options.fleet?.epoch();
    if (hostId === undefined || epoch === undefined) return 0;
    const fenced = [...this.#actors.values()].filter((actor) => actor.placement?.hostId === hostId && actor.placement.lost);
    await inBatches(fenced, 32, (actor) => actor.returnHome(epoch));
    if (fenced.length) this.options.logger.info('took back the entities fenced while this host was away', { hostId, epoch, entities: fenced.length });
    return fenced.length;
  }

  /**
   * The lease was lost while this agent ran (it was paused, or cut off): all work stops at once,
   * since another agent may be fencing its entities. The agent then folds the stream
   * (catchUpWithStream), takes a new lease, and resumes (resumeAfterRejoin) as a restart does.
   */
  stopAllWork(): void {
    for (const actor of this.#actors.values()) actor.stopWork();
  }

  /**
   * Folds everything the stream holds now — what others wrote while this agent could not (fences
   * among it) — before the lease is taken back; throws when the shared read does not get there in
   * time, and the caller stays fenced and tries again.
   */
  async catchUpWithStream(timeoutMs = 30_000): Promise<void> {
    const target = await this.alertLog.streamLastSequence();
    const deadline = performance.now() + timeoutMs;
    while ((this.#observed ?? 0) < target) {
      if (performance.now() > deadline) throw new OpstreamError(ErrorCodes.Unavailable, `the shared read is at ${this.#observed ?? 0}, short of ${target}, after ${timeoutMs} ms`);
      await sleep(20);
    }
    await Promise.all([...this.#actors.values()].map((actor) => actor.settle()));
  }

  /** With the lease back: resume what was never fenced, take back (and then resume) what was. */
  async resumeAfterRejoin(): Promise<void> {
    await Promise.all([...this.#actors.values()].map((actor) => actor.resume()));
    await this.takeBack();
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
    this.#stalls.stop();
    await Promise.all(actors.map((actor) => actor.settle()));
    await this.#checkpointRun;
    const { snapshots } = this.options;
    if (!snapshots) return;
    const saved = await this.#saveSnapshots(actors);
    const complete = this.#recovered && saved.every(Boolean) && actors.every((actor) => !actor.divergence);
    if (!complete) return;
    try {
      // Followed live, the checkpoint covers what was inspected, not what someone added unseen.
      const last = await this.alertLog.streamLastSequence();
      const checkpoint = this.#checkpoints.checkpoint(this.#observed === undefined ? last : Math.min(last, this.#observed));
      await snapshots.saveCheckpoint(checkpoint, this.#hostId, await this.#saveImage(snapshots, actors));
    } catch (error) {
      // The server is away: the next start reads more of the stream, nothing is lost.
      this.options.logger.warn('stopped without saving a checkpoint', { error: String(error) });
    }
  }

  /** Every snapshot just saved, again as one image the next start reads at once (undefined: not written, which only costs time). */
  async #saveImage(snapshots: SnapshotStore, actors: EntityActor[]): Promise<ImageRef | undefined> {
    const stored = actors.flatMap((actor) => {
      const snapshot = actor.storedSnapshot();
      return snapshot ? [{ ref: actor.ref, stored: snapshot }] : [];
    });
    try {
      return await snapshots.saveImage(stored, this.#hostId);
    } catch (error) {
      this.options.logger.warn('stopped without an image of the snapshots; the next start reads them one by one', { error: String(error) });
      return undefined;
    }
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
    this.#stalls.stop();
  }

  #actor(ref: EntityRef, state: ReplayState, snapshotRevision = 0): EntityActor {
    const parent = parentOf(ref);
    const shared = this.#depsOf(ref.kind);
    // A sub-object follows its parent's placement: the one thing its actor does not share.
    const deps = parent ? { ...shared, parentPlacement: () => this.#actors.get(entityKey(parent))?.placement } : shared;
    return new EntityActor(ref, deps, state, snapshotRevision);
  }

  /** What every actor of `kind` depends on: one object per kind, not one per entity (100,000 at a restart). */
  #depsOf(kind: EntityRef['kind']): EntityActorDeps {
    let deps = this.#deps.get(kind);
    if (deps) return deps;
    const definition = definitions[kind];
    if (!definition) throw new OpstreamError(ErrorCodes.NoSuchEntity, `no machine for entity kind ${kind}`);
    const { snapshots, snapshotEvery, now, logger, stallTimeouts, defaultStallMs, storeRetryPolicy, callDeadlineMs, hostId: self, fleet } = this.options;
    deps = {
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
      stalls: this.#stalls,
      recorded: (actor, appended) => {
        this.tasks.observe(appended);
        this.#checkpoints.mark(entityKey(actor.ref), appended.seq);
      },
    };
    if (self !== undefined) deps.hostId = self;
    if (self !== undefined && fleet) deps.leaseEpoch = () => fleet.epoch();
    this.#deps.set(kind, deps);
    return deps;
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
    // Only disks this agent writes: another host's VM reports on its own disks.
    return this.entitiesOf(EntityKinds.VM).flatMap((actor) => {
      if (!actor.owned || actor.view().status === 'Down') return [];
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

/** Runs `each` over `items`, at most `width` at a time. */
async function inBatches<T>(items: readonly T[], width: number, each: (item: T) => Promise<unknown>): Promise<void> {
  for (let start = 0; start < items.length; start += width) {
    await Promise.all(items.slice(start, start + width).map(each));
  }
}

/** Records seen during recovery whose messages are kept for folding; the rest are read again. */
const MAX_EARLY_BODIES = 10_000;
const WITHOUT_BODY = 'seen during recovery; read again from the stream';

function withoutBody(seq: number, subject: string): () => HistoryRecord {
  return () => ({ seq, subject, reason: WITHOUT_BODY });
}
