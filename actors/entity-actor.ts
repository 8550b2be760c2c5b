// One entity, hosted on its subject. Every change goes through #apply, one at a time: compute the
// next snapshot with XState's pure transition, append it to the stream guarded by the subject's
// last sequence, and only then adopt it and start the work its new state declares.
import { setTimeout as sleep } from 'node:timers/promises';
import { errors } from '@nats-io/transport-node';
import type { AnyMachineSnapshot, EventFromLogic } from 'xstate';
import { stateMeta, type DriverEvent, type ErrorTuple } from '../machines/entity.ts';
import type { MachineDefinition } from '../machines/index.ts';
import type { Alert, StateValue } from '../src/domain/alert.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { ErrorCodes, isConflict, OpstreamError, OwnedElsewhereError } from '../src/domain/errors.ts';
import { LastErrorCodes } from '../src/domain/last-errors.ts';
import { retryDelayMs, retryPolicy, type RetryPolicy } from '../src/domain/retry-policy.ts';
import { redact } from '../src/domain/redaction.ts';
import { alertSubject } from '../src/domain/subjects.ts';
import type { Logger } from '../src/log.ts';
import { isUnreachable } from '../src/nats/errors.ts';
import { isQuarantined, type AlertLog, type HistoryRecord } from './alert-log.ts';
import type { Driver, EntityEvent, EntityRef } from './drivers/driver.ts';
import { buildAlert } from './alert-builder.ts';
import { acceptedCalls, metaOf, stateKey, viewOf, type EntityView } from './entity-snapshot.ts';
import { nextSnapshot } from './pure-transition.ts';
import { placementAfter, UNKNOWN_STATUS, type Placement, type PlacementEvent } from './placement.ts';
import type { Quarantine } from './quarantine.ts';
import { jsonEqual, replayOne, type Divergence, type ReplayState } from './replay.ts';
import type { SnapshotStore, StoredSnapshot } from './snapshot-store.ts';
import type { StallWatch } from './stall-watch.ts';
import { WorkStop } from './work-stop.ts';

export type EntityActorDeps = {
  definition: MachineDefinition;
  log: AlertLog;
  driver: Driver;
  now: () => Date;
  logger: Logger;
  quarantine: Quarantine;
  snapshots?: { store: SnapshotStore; every: number };
  /** How long a work may go without reporting before it counts as stalled (undefined: forever). */
  stallAfterMs?: (work: string) => number | undefined;
  /** Where running works' stall limits are kept: one timer for the whole runtime. */
  stalls: StallWatch;
  /**
   * Told of every record of the entity once it is durable and folded, before any onTransition
   * listener: one function for every actor, where a listener each cost a closure and a Set.
   */
  recorded?: (actor: EntityActor, appended: Appended) => void;
  /** How appends that must land (driver events) and the check after a lost answer are retried. */
  storeRetry?: RetryPolicy;
  /**
   * How long a call (request, cancel) may wait behind earlier work — a driver event retried until
   * the stream is back — before it fails with Unavailable; it then never runs. Default 10 s.
   */
  callDeadlineMs?: number;
  /**
   * The host this agent writes for, stamped on every alert. Without one the runtime is a fleet of
   * one: it owns every entity it holds and stamps nothing.
   */
  hostId?: string;
  /** The lease epoch this agent holds now (see FleetMembership); a lost host's epoch is older. */
  leaseEpoch?: () => number | undefined;
  /** A sub-object (a VM's disk) goes where its parent goes: its owner is its parent's. */
  parentPlacement?: () => Placement | undefined;
};

export const DEFAULT_CALL_DEADLINE_MS = 10_000;

/**
 * The default for storeRetry: 100 ms, doubling, at most 2 s apart, forever — a driver event
 * describes work already done, so it is never given up.
 */
export const STORE_RETRY_POLICY: RetryPolicy = retryPolicy({ initialIntervalMs: 100, maximumIntervalMs: 2_000 });

/** What a cancel request did: reverting (the CANCEL transition is in the stream) or rolling forward. */
export type CancelOutcome = { policy: 'revert' | 'rollForward'; state: string; status: string; reason: string; appended?: Appended };

export type Appended = { seq: number; alert: Alert };

/** lastError of an operation whose state says it cannot survive an agent restart. */
export const RESUME_FAILED = LastErrorCodes.ResumeFailed;
/** lastError of an operation whose driver reported nothing for longer than its work allows. */
export const WORK_STALLED = LastErrorCodes.WorkStalled;

type MachineEvent = EventFromLogic<MachineDefinition['machine']>;
/** `ended`: the driver reported the work's end (WORK_DONE or WORK_FAILED); nothing of it runs to stop. */
type RunningWork = { state: StateValue; work: string; stop: WorkStop; ended: boolean };

const endsWork = (event: DriverEvent | EntityEvent): boolean => event.type === 'WORK_DONE' || event.type === 'WORK_FAILED';
/** What #apply did with an event. */
type Outcome = Appended | 'refused' | 'unchanged';

export class EntityActor {
  readonly subject: string;
  #state: ReplayState;
  #snapshotRevision: number;
  #work: RunningWork | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0;
  #stopped = false;
  /** An append failed without an answer: it may have landed. Settled by #confirmWithStream. */
  #uncertain = false;
  /** Made on the first onTransition: the runtime's own bookkeeping goes through deps.recorded. */
  #listeners: Set<(appended: Appended) => void> | undefined;

  constructor(
    readonly ref: EntityRef,
    private readonly deps: EntityActorDeps,
    replayed: ReplayState,
    /** The revision the newest stored snapshot covers (0: none). */
    snapshotRevision = 0,
  ) {
    this.subject = alertSubject(ref.kind, ref.id);
    this.#state = replayed;
    this.#snapshotRevision = snapshotRevision;
  }

  /** Whether the entity has any history: one never created has none (a diverged one has some). */
  get exists(): boolean {
    return this.#state.revision > 0 || this.#state.divergence !== undefined;
  }

  /** Nothing queued, nothing running: an actor with no history in this state can be forgotten. */
  get idle(): boolean {
    return this.#pending === 0 && this.#work === undefined;
  }

  get lastSeq(): number {
    return this.#state.lastSeq;
  }

  get divergence(): Divergence | undefined {
    return this.#state.divergence;
  }

  get snapshot(): AnyMachineSnapshot {
    return this.#state.snapshot;
  }

  /** Where the entity runs, as its history says (a sub-object: where its parent runs). */
  get placement(): Placement | undefined {
    return this.deps.parentPlacement ? this.deps.parentPlacement() : this.#state.placement;
  }

  /** The host that runs the entity: its recorded owner, else (no fleet record yet) this agent's host. */
  get hostId(): string | undefined {
    return this.placement?.hostId ?? this.deps.hostId;
  }

  /**
   * Whether this agent writes the entity and runs its work: it is the recorded owner and the fleet
   * has not declared it lost, or nobody has placed the entity yet, or there is no fleet.
   */
  get owned(): boolean {
    // An agent whose lease was taken writes nothing until it holds one again.
    if (this.deps.leaseEpoch && this.deps.leaseEpoch() === undefined) return false;
    const placement = this.placement;
    if (this.deps.hostId === undefined || placement === undefined) return true;
    return placement.hostId === this.deps.hostId && !placement.lost;
  }

  view(): EntityView {
    this.#assertTrusted();
    const view = viewOf(this.#state.snapshot);
    return this.placement?.lost ? { ...view, status: UNKNOWN_STATUS } : view;
  }

  /**
   * A call (or a fault): refused with a clear error when the current state cannot take it. A call
   * not started within its deadline fails with Unavailable and never runs; a fault a driver
   * delivers passes `{ deadline: false }`, because what it reports has happened.
   */
  request(event: EntityEvent, { deadline = true }: { deadline?: boolean } = {}): Promise<Appended> {
    if (this.#uncertain) {
      return Promise.reject(
        new OpstreamError(ErrorCodes.Unavailable, `${this.subject}: the outcome of an earlier call is being confirmed with the stream; retry shortly`),
      );
    }
    const run = deadline ? this.#serializeCall.bind(this) : this.#serialize.bind(this);
    return run(async () => {
      this.#assertTrusted();
      this.#assertOwned();
      const outcome = await this.#apply(event as MachineEvent);
      if (typeof outcome === 'object') return outcome;
      const code = this.exists ? ErrorCodes.InvalidTransition : ErrorCodes.NoSuchEntity;
      throw new OpstreamError(code, this.#refusal(event.type), {
        status: viewOf(this.#state.snapshot).status,
        accepted: acceptedCalls(this.#state.snapshot),
      });
    });
  }

  /**
   * The stream holds a record of this entity at `seq`. If this actor did not write it (its own
   * appends are folded in before their turn comes here), it is someone else's — another host's,
   * when this is a mirror of an entity it owns, or a forgery: fold it now, so the mirror is current
   * and a forged record makes the entity diverge at once instead of at the next restart. The next
   * record in order is folded as it is; anything else is read from the stream.
   */
  observe(seq: number, decode: () => HistoryRecord): void {
    if (seq <= this.#state.lastSeq || this.#stopped) return;
    void this.#serialize(async () => {
      if (seq <= this.#state.lastSeq || this.#state.divergence) return;
      const record = decode();
      const wasOwned = this.owned;
      if (!isQuarantined(record) && record.seq === seq && record.alert.revision === this.#state.revision + 1) {
        this.#state = replayOne(this.deps.definition, this.#state, record);
        if (!this.#state.divergence) this.#tell(record);
        this.#afterForeignRecord(wasOwned);
      } else {
        await this.#catchUp({ drive: false });
      }
    }).catch((error: unknown) => this.deps.logger.warn('could not fold a record written by someone else', { subject: this.subject, seq, error: String(error) }));
  }

  /**
   * The fleet declared `hostId` lost at lease epoch `epoch`: if it still owns this entity, record
   * HOST_LOST. The record moves the subject's sequence, so the lost host — should it be only
   * paused — cannot append here again: the write path's guard refuses it.
   */
  fenceLostHost(hostId: string, epoch: number, by: string): Promise<Appended | undefined> {
    return this.#serialize(async () => {
      if (!this.fenceableFor(hostId, epoch)) return undefined;
      return this.#recordPlacement({ type: 'HOST_LOST', hostId, epoch, by }, false);
    });
  }

  /**
   * Whether HOST_LOST of `hostId` at lease `epoch` is still to be recorded here: the host owns the
   * entity and has not come back with this lease or a newer one since — or, for a sub-object, its
   * parent is that host's and its own subject carries no fence of this lease yet.
   */
  fenceableFor(hostId: string, epoch: number): boolean {
    if (this.#state.divergence || !this.exists) return false;
    const own = this.#state.placement;
    if (this.deps.parentPlacement) return this.deps.parentPlacement()?.hostId === hostId && own?.lostEpoch !== epoch;
    if (own?.hostId !== hostId || own.lost) return false;
    return own.epoch === undefined || own.epoch < epoch;
  }

  /**
   * This host is back with lease epoch `epoch`: take back what the fleet fenced while it was away
   * (HOST_RETURNED), then carry on as a restart does.
   */
  async returnHome(epoch: number): Promise<void> {
    const returned = await this.#serialize(async () => {
      const placement = this.#state.placement;
      if (this.deps.parentPlacement || !placement?.lost || placement.hostId !== this.deps.hostId || this.#state.divergence) return undefined;
      // Fenced at this lease (or a later one): this agent is the zombie, not the one returning.
      if ((placement.lostEpoch ?? 0) >= epoch || this.deps.leaseEpoch?.() !== epoch) return undefined;
      return this.#recordPlacement({ type: 'HOST_RETURNED', hostId: placement.hostId, epoch }, true);
    });
    if (returned) await this.resume();
  }

  /**
   * Cancels the running task `taskId` as the current state's meta declares: `revert` records
   * CANCEL (the aborting state is in the stream before the driver is told: the runtime stops the
   * work only after the append), `rollForward` records nothing, `refuse` throws CancelRefused.
   */
  cancel(taskId: string): Promise<CancelOutcome> {
    if (this.#uncertain) {
      return Promise.reject(new OpstreamError(ErrorCodes.Unavailable, `${this.subject}: an earlier outcome is being confirmed with the stream; retry the cancel shortly`));
    }
    return this.#serializeCall(async () => {
      this.#assertTrusted();
      this.#assertOwned();
      const view = viewOf(this.#state.snapshot);
      if (view.task?.id !== taskId) {
        throw new OpstreamError(ErrorCodes.JobNotActive, `task ${taskId} is not running on ${this.subject} (it is ${view.status})`);
      }
      const state = stateKey(this.#state.snapshot);
      const policy = view.meta.cancel ?? { policy: 'rollForward', reason: 'this state declares no cancel; the operation finishes' };
      if (policy.policy === 'refuse') {
        throw new OpstreamError(ErrorCodes.CancelRefused, `${this.subject} is in state ${state} (${view.status}): cancel refused — ${policy.reason}`, {
          state: view.state,
          status: view.status,
          reason: policy.reason,
        });
      }
      if (policy.policy === 'rollForward') return { policy: 'rollForward', state, status: view.status, reason: policy.reason };
      const outcome = await this.#apply({ type: 'CANCEL' } as MachineEvent);
      if (typeof outcome !== 'object') throw new OpstreamError(ErrorCodes.InternalError, `${this.subject}: state ${state} declares revert but does not take CANCEL`);
      return { policy: 'revert', state, status: outcome.alert.status, reason: policy.reason, appended: outcome };
    });
  }

  /** Calls `listener` after each transition this actor persists; returns the unsubscribe. */
  onTransition(listener: (appended: Appended) => void): () => void {
    (this.#listeners ??= new Set()).add(listener);
    return () => this.#listeners?.delete(listener);
  }

  /** A record of this entity is durable and folded: the runtime first, then whoever listens. */
  #tell(appended: Appended): void {
    this.deps.recorded?.(this, appended);
    if (this.#listeners) for (const listener of this.#listeners) listener(appended);
  }

  /**
   * After an agent restart: carry on with the operation the entity was in, as its state declares —
   * `continue` the driver's run, `restart` the stage, or `fail` the operation with a lastError.
   * The task keeps its id either way.
   */
  async resume(): Promise<void> {
    if (this.#state.divergence || !this.owned) return;
    const meta = stateMeta(this.#state.snapshot);
    // A state without work of its own (a VM's disk, reported on by its VM's driver) can still
    // declare that it cannot outlive the agent: it fails like one whose work cannot resume.
    if (!meta.work && meta.onResume !== 'fail') return;
    if (this.#unplacedInFleet() && !(await this.#claimIfUnplaced())) return;
    const policy = meta.onResume ?? 'restart';
    // Carrying on (every running VM's watch) is routine and goes unlogged: a line each, even
    // dropped as debug, was a visible part of a 100,000-entity restart.
    if (policy !== 'continue') this.deps.logger.info('resuming an operation after restart', { ...this.#logFields(), work: meta.work, policy });
    if (policy !== 'fail') {
      this.#reconcileWork(policy === 'continue');
      return;
    }
    const error: ErrorTuple = [
      RESUME_FAILED,
      `the agent restarted during "${meta.operation.stageDescription}"; ${meta.operation.operationDescription} cannot be resumed`,
    ];
    // Decided before its turn: a fence folded meanwhile means the failure is no longer ours to record.
    await this.#serialize(async () => (this.owned ? this.#apply({ type: 'WORK_FAILED', error }, { retryUntilStored: true }) : 'unchanged'));
  }

  /** An entity of its own (no parent) whose history names no owner, held by an agent of a fleet. */
  #unplacedInFleet(): boolean {
    return this.deps.hostId !== undefined && this.deps.leaseEpoch !== undefined && !this.deps.parentPlacement && !this.#state.placement;
  }

  /**
   * A history from before the fleet names no owner, so every agent of a fleet would take it for
   * its own: before resuming its work, one claims it with a guarded HOST_CHANGED to itself. The
   * others lose the race, fold the claim, and leave the work to the winner.
   */
  async #claimIfUnplaced(): Promise<boolean> {
    const self = this.deps.hostId;
    if (self === undefined || !this.#unplacedInFleet()) return this.owned;
    try {
      await this.#serialize(() => (this.#state.placement ? Promise.resolve(undefined) : this.#recordPlacement({ type: 'HOST_CHANGED', from: self, to: self }, false)));
    } catch (error) {
      this.deps.logger.info('another agent claimed an entity from before the fleet', { subject: this.subject, error: String(error) });
    }
    return this.owned;
  }

  /** Stops driver work; transitions already queued still finish. */
  stopWork(): void {
    const work = this.#work;
    if (!work) return;
    this.#work = undefined;
    this.deps.stalls.forget(work);
    // A work that reported its end is over (driver.ts): its driver released what it held then.
    if (!work.ended) work.stop.abort();
  }

  /** Stops for good: no work, no more retries. */
  stop(): void {
    this.#stopped = true;
    this.stopWork();
  }

  /** Waits until every queued change has been applied. */
  async settle(): Promise<void> {
    await this.#queue.catch(() => undefined);
  }

  /** Saves a snapshot if anything happened since the last one (a clean shutdown does this). */
  async snapshotIfChanged(): Promise<boolean> {
    if (!this.deps.snapshots || this.#state.divergence || this.#state.revision === this.#snapshotRevision) return true;
    return this.#saveSnapshot();
  }

  /** Every log line names the entity and, while it runs one, the task, its job and the caller's flowId. */
  #logFields(): { subject: string; taskId?: string; jobId?: string; flowId?: string } {
    const task = (this.#state.snapshot.context as { task?: TaskInfo | null }).task;
    if (!task) return { subject: this.subject };
    return { subject: this.subject, taskId: task.id, jobId: task.jobId ?? task.id, ...(task.flowId ? { flowId: task.flowId } : {}) };
  }

  /**
   * #serialize with the call deadline: a call still queued when it passes is answered Unavailable
   * and its turn, when it comes, does nothing — its client was told it failed, so it must not run.
   */
  #serializeCall<T>(job: () => Promise<T>): Promise<T> {
    // Nothing queued: the call runs at once, and a deadline timer per call was a visible cost.
    if (this.#pending === 0) return this.#serialize(job);
    const deadlineMs = this.deps.callDeadlineMs ?? DEFAULT_CALL_DEADLINE_MS;
    return new Promise<T>((resolve, reject) => {
      let expired = false;
      const timer = setTimeout(() => {
        expired = true;
        reject(
          new OpstreamError(
            ErrorCodes.Unavailable,
            `${this.subject}: the call waited ${deadlineMs} ms behind earlier work (is the stream away?) and was dropped; it will not run — retry`,
          ),
        );
      }, deadlineMs);
      this.#serialize(async () => {
        clearTimeout(timer);
        if (expired) return undefined;
        return job();
      }).then((value) => {
        if (!expired) resolve(value as T);
      }, (error: unknown) => {
        if (!expired) reject(error instanceof Error ? error : new Error(String(error)));
      });
    });
  }

  #serialize<T>(job: () => Promise<T>): Promise<T> {
    this.#pending += 1;
    const run = this.#queue.then(job, job).finally(() => (this.#pending -= 1));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #assertTrusted(): void {
    const divergence = this.#state.divergence;
    if (!divergence) return;
    throw new OpstreamError(
      ErrorCodes.EntityDiverged,
      `${this.subject}: history cannot be replayed at sequence ${divergence.seq}: ${divergence.reason}; ` +
        `the agent will not change it — see \`opstream replay ${this.subject} --verify\``,
      { divergence },
    );
  }

  /** Calls change only what this agent owns; the API forwards the rest to the owner. */
  #assertOwned(): void {
    if (this.owned) return;
    if (this.deps.leaseEpoch?.() === undefined && this.deps.leaseEpoch) {
      throw new OpstreamError(ErrorCodes.Unavailable, `${this.subject}: this agent lost its host lease and writes nothing until it takes it back; retry shortly`);
    }
    const placement = this.placement;
    if (!placement) return;
    if (placement.lost) {
      throw new OpstreamError(
        ErrorCodes.Unavailable,
        `${this.subject} runs on host ${placement.hostId}, which is not responding (status ${UNKNOWN_STATUS}); retry when it is back`,
        { hostId: placement.hostId },
      );
    }
    throw new OwnedElsewhereError(placement.hostId, `${this.subject} runs on host ${placement.hostId}`);
  }

  #refusal(type: string): string {
    const { status } = viewOf(this.#state.snapshot);
    const accepted = acceptedCalls(this.#state.snapshot);
    const what = this.exists ? `${this.ref.kind} ${this.ref.id} is ${status}` : `${this.ref.kind} ${this.ref.id} does not exist`;
    return `${what}: cannot ${type} (accepts ${accepted.length ? accepted.join(', ') : 'nothing now'})`;
  }

  /**
   * Driver events come back here; those of work that was stopped since are dropped. The driver
   * did the work already, so its event is retried until stored, across a server outage.
   */
  #report(work: RunningWork, event: DriverEvent | EntityEvent): Promise<void> {
    if (endsWork(event)) work.ended = true;
    if (this.#work === work) this.deps.stalls.touch(work);
    return this.#serialize(async () => {
      if (this.#work !== work || this.#state.divergence) return;
      await this.#apply(event, { skipUnchanged: true, retryUntilStored: true });
    }).catch((error: unknown) => {
      this.deps.logger.warn('driver event not applied', { ...this.#logFields(), event: event.type, error: String(error) });
    });
  }

  /**
   * Persists the transition `event` causes. A driver event that changes nothing visible (the
   * same rounded percentage) is not worth an alert: `skipUnchanged` drops it.
   */
  async #apply(event: MachineEvent, options: { skipUnchanged?: boolean; retryUntilStored?: boolean } = {}): Promise<Outcome> {
    const { definition, now } = this.deps;
    // Every path to an append passes here: nothing is written for an entity this agent does not own
    // now, whatever was decided before this turn (a fence may have been folded since).
    this.#assertOwned();
    // Machines see the event exactly as it is recorded, so replay reproduces the same context.
    const recorded = redact(event);
    const before = this.#state.snapshot;
    if (!before.can(recorded)) return 'refused';
    const next = nextSnapshot(definition.machine, before as never, recorded as never);
    if (options.skipUnchanged && jsonEqual(next.value, before.value) && jsonEqual(next.context, before.context)) {
      return 'unchanged';
    }
    const revision = this.#state.revision + 1;
    const alert = buildAlert({ definition, subject: this.subject, before, next, event: recorded, revision, time: now() });
    // A sub-object's owner is its parent's: it names none of its own, so a hand-over moves both.
    const stamp = this.deps.parentPlacement ? undefined : this.deps.hostId;
    if (stamp !== undefined) alert.hostId = stamp;
    const seq = await this.#append(alert, `${alert.task?.id ?? this.subject}:${revision}`, options.retryUntilStored ?? false);
    // Owned, so the recorded placement (if any) is this host's: replay keeps it as it is too.
    const placement = stamp === undefined ? this.#state.placement : (this.#state.placement ?? { hostId: stamp });
    this.#state = { snapshot: next, lastSeq: seq, revision, ...(placement ? { placement } : {}) };
    this.#reconcileWork(false);
    const appended = { seq, alert };
    this.#tell(appended);
    if (this.deps.snapshots && revision - this.#snapshotRevision >= this.deps.snapshots.every) void this.#saveSnapshot();
    return appended;
  }

  /**
   * Appends with this entity's guard. A conflict means another writer won: fold what it wrote
   * and fail. Any other failure (server away) is retried with the same Nats-Msg-Id when asked,
   * so an append that did land before its ack was lost is not stored twice.
   */
  async #append(alert: Alert, msgId: string, retryUntilStored: boolean): Promise<number> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.deps.log.append(alert, this.#state.lastSeq, msgId);
      } catch (error) {
        if (isConflict(error)) {
          await this.#catchUp();
          throw error;
        }
        // A closed connection never comes back: only a disconnected one is worth waiting for. A
        // refusal no retry changes (a msg id the log will not send, a message over the server's
        // limit) would hold the entity's queue for good.
        const refused = (error instanceof OpstreamError && error.code !== ErrorCodes.Unavailable) || error instanceof errors.InvalidArgumentError;
        if (!retryUntilStored || this.#stopped || refused || error instanceof errors.ClosedConnectionError) {
          if (isUnreachable(error) && !this.#stopped) {
            this.#uncertain = true;
            void this.#serialize(() => this.#confirmWithStream());
          }
          throw error;
        }
        if (attempt === 0) this.deps.logger.warn('append failed; retrying until the stream is back', { ...this.#logFields(), error: String(error) });
        await sleep(this.#retryDelay(attempt));
      }
    }
  }

  /**
   * After an append whose answer was lost: once the stream answers, see whether it landed — the
   * client may have buffered it and sent it on reconnect — and fold it in if so. Re-sending it
   * instead could run, hours later, a call its client was told had failed.
   */
  async #confirmWithStream(): Promise<void> {
    for (let attempt = 0; !this.#stopped; attempt += 1) {
      try {
        if ((await this.deps.log.lastSequence(this.subject)) !== this.#state.lastSeq) await this.#catchUp();
        this.#uncertain = false;
        return;
      } catch {
        await sleep(this.#retryDelay(attempt));
      }
    }
  }

  /** The wait after failed attempt number `attempt` (0-based); these retries never give up. */
  #retryDelay(attempt: number): number {
    const policy = this.deps.storeRetry ?? STORE_RETRY_POLICY;
    return retryDelayMs(policy, attempt + 1) ?? policy.maximumIntervalMs;
  }

  /**
   * The subject moved under us: fold what was written so the next call starts from the truth.
   * Most often it is our own append whose ack was lost in an outage and that landed anyway, so the
   * agent — the entity's owner — drives whatever state the stream now says, work included.
   */
  async #catchUp({ drive = true }: { drive?: boolean } = {}): Promise<void> {
    const wasOwned = this.owned;
    for await (const record of this.deps.log.read(this.subject, this.#state.lastSeq + 1)) {
      if (isQuarantined(record)) this.deps.quarantine.add({ source: 'stream', ...record });
      this.#state = replayOne(this.deps.definition, this.#state, record);
      // Listeners (the task registry) must see what landed without our ack, too.
      if (!this.#state.divergence && !isQuarantined(record)) this.#tell(record);
    }
    if (this.#state.divergence) this.stopWork();
    else if (!drive) this.#afterForeignRecord(wasOwned);
    else this.#reconcileWork(true);
  }

  /**
   * After folding a record this actor did not append in its turn. Whoever owns the entity now
   * drives the state the stream says: a mirror stops (it never ran anything), a record that made
   * this agent the owner (a migration handed the entity over) is taken up as a restart would, and
   * an owner's own append whose answer was lost but that landed goes on with its work — records
   * of an owned entity by anyone else diverge in replay instead. A HOST_LOST of this host from an
   * earlier lease (it came back before the record landed) is answered with HOST_RETURNED.
   */
  #afterForeignRecord(wasOwned: boolean): void {
    if (this.#state.divergence) {
      this.stopWork();
      return;
    }
    const placement = this.placement;
    const epoch = this.deps.leaseEpoch?.();
    if (placement?.lost && placement.hostId === this.deps.hostId && epoch !== undefined && (placement.lostEpoch ?? 0) < epoch) {
      this.stopWork();
      void this.returnHome(epoch).catch((error: unknown) => this.deps.logger.warn('could not take back an entity', { subject: this.subject, error: String(error) }));
      return;
    }
    if (this.owned) this.#reconcileWork(!wasOwned || this.#work === undefined);
    else this.stopWork();
  }

  /**
   * Appends a fleet record: the machine does not move, only the owner (see placement.ts). Its
   * guard is the same as every append's, so it fences whoever wrote from a stale sequence.
   */
  async #recordPlacement(event: PlacementEvent, retryUntilStored: boolean): Promise<Appended | undefined> {
    const subObject = this.deps.parentPlacement !== undefined;
    const placement = placementAfter(this.#state.placement, event, undefined, subObject);
    if (typeof placement === 'string') return undefined;
    const { snapshot } = this.#state;
    const revision = this.#state.revision + 1;
    const alert = buildAlert({ definition: this.deps.definition, subject: this.subject, before: snapshot, next: snapshot, event, revision, time: this.deps.now() });
    if (placement?.lost) alert.status = UNKNOWN_STATUS;
    if (placement && !subObject) alert.hostId = placement.hostId;
    const seq = await this.#append(alert, `${this.subject}:${revision}:${event.type}`, retryUntilStored);
    this.#state = { ...this.#state, lastSeq: seq, revision, ...(placement ? { placement } : {}) };
    const appended = { seq, alert };
    this.#tell(appended);
    this.deps.logger.info('recorded a change of host', { subject: this.subject, seq, ...event });
    // Given away or fenced out: stop. Taken back: the caller resumes as a restart would.
    if (!this.owned) this.stopWork();
    return appended;
  }


  /** A state whose work runs on the destination: give the entity to it (recorded by its owner, here). */
  #handOver(dstHost: string): void {
    const from = this.deps.hostId;
    if (from === undefined) return;
    void this.#serialize(async () => {
      if (!this.owned || this.#stopped || !stateMeta(this.#state.snapshot).handOver) return;
      await this.#recordPlacement({ type: 'HOST_CHANGED', from, to: dstHost }, true);
    }).catch((error: unknown) => this.deps.logger.warn('could not hand the entity over', { subject: this.subject, dstHost, error: String(error) }));
  }

  /** The entity as a stored snapshot records it: undefined when it has no history, or none to trust. */
  storedSnapshot(): StoredSnapshot | undefined {
    const { snapshot, lastSeq, revision, placement, divergence } = this.#state;
    if (divergence || revision === 0) return undefined;
    const { definition } = this.deps;
    return {
      machine: { id: definition.machine.id, version: definition.version },
      seq: lastSeq,
      revision,
      // A machine snapshot persists as { status, value, context, ... }: what StoredSnapshot checks.
      snapshot: definition.machine.getPersistedSnapshot(snapshot) as unknown as StoredSnapshot['snapshot'],
      ...(placement ? { placement } : {}),
    };
  }

  async #saveSnapshot(): Promise<boolean> {
    const { store } = this.deps.snapshots ?? {};
    const stored = this.storedSnapshot();
    if (!store || !stored) return false;
    try {
      await store.save(this.ref, stored);
      this.#snapshotRevision = Math.max(this.#snapshotRevision, stored.revision);
      return true;
    } catch (error) {
      // A missed snapshot only makes the next recovery replay more of the stream.
      this.deps.logger.warn('could not save a snapshot', { ...this.#logFields(), error: String(error) });
      return false;
    }
  }

  /**
   * Starts the watchdog of the running work: a driver that reports nothing for longer than its
   * work kind allows fails the operation, so no task stays "running" forever.
   */
  #watchForStall(running: RunningWork): void {
    const limit = this.deps.stallAfterMs?.(running.work);
    if (limit === undefined || !Number.isFinite(limit)) return;
    this.deps.stalls.watch(running, limit, () => {
      if (this.#work !== running) return;
      const meta = stateMeta(this.#state.snapshot);
      const error: ErrorTuple = [
        WORK_STALLED,
        `"${running.work}" stalled: the driver reported nothing for ${Math.round(limit / 1000)} s during "${meta.operation.stageDescription}"`,
      ];
      this.deps.logger.warn('work stalled', { ...this.#logFields(), work: running.work, limitMs: limit });
      running.stop.abort();
      void this.#serialize(async () => {
        if (this.#work !== running) return;
        await this.#apply({ type: 'WORK_FAILED', error }, { retryUntilStored: true });
      }).catch((failure: unknown) => this.deps.logger.warn('stall not recorded', { ...this.#logFields(), error: String(failure) }));
    });
  }

  #reconcileWork(resumed: boolean): void {
    if (!this.owned || this.#state.divergence) {
      this.stopWork();
      return;
    }
    const snapshot = this.#state.snapshot;
    const state = snapshot.value as StateValue;
    if ((this.#work && jsonEqual(this.#work.state, state)) || this.#stopped) return;
    this.stopWork();
    const { work, handOver } = metaOf(snapshot);
    const dstHost = (snapshot.context as { dstHost?: string | null }).dstHost;
    if (handOver && this.deps.hostId !== undefined && dstHost && dstHost !== this.deps.hostId) {
      this.#handOver(dstHost);
      return;
    }
    if (!work) return;
    const stop = new WorkStop((error) =>
      this.deps.logger.warn('a driver failed to stop its work', { ...this.#logFields(), work, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
    );
    const running: RunningWork = { state, work, stop, ended: false };
    this.#work = running;
    this.#watchForStall(running);
    this.deps.driver.start(
      { ...this.ref, work, context: snapshot.context as Record<string, unknown>, resumed },
      (event) => this.#report(running, event),
      stop,
    );
  }
}
