// One entity, hosted on its subject. Every change goes through #apply, one at a time: compute the
// next snapshot with XState's pure transition, append it to the stream guarded by the subject's
// last sequence, and only then adopt it and start the work its new state declares.
import { isDeepStrictEqual } from 'node:util';
import type { AnyMachineSnapshot, EventFromLogic } from 'xstate';
import type { DriverEvent } from '../machines/entity.ts';
import type { MachineDefinition } from '../machines/index.ts';
import type { Alert } from '../src/domain/alert.ts';
import { ErrorCodes, isConflict, OpstreamError } from '../src/domain/errors.ts';
import { redact } from '../src/domain/redaction.ts';
import { alertSubject } from '../src/domain/subjects.ts';
import type { Logger } from '../src/log.ts';
import type { AlertLog } from './alert-log.ts';
import type { Driver, EntityEvent, EntityRef, WorkHandle } from './drivers/driver.ts';
import { acceptedCalls, stateKey, taskChange, viewOf, type EntityView } from './entity-snapshot.ts';
import { nextSnapshot } from './pure-transition.ts';
import { replayOne, type Divergence, type ReplayState } from './replay.ts';

export type EntityActorDeps = {
  definition: MachineDefinition;
  log: AlertLog;
  driver: Driver;
  now: () => Date;
  logger: Logger;
};

export type Appended = { seq: number; alert: Alert };

type MachineEvent = EventFromLogic<MachineDefinition['machine']>;
type RunningWork = { stateKey: string; handle?: WorkHandle };
/** What #apply did with an event. */
type Outcome = Appended | 'refused' | 'unchanged';

export class EntityActor {
  readonly subject: string;
  #state: ReplayState;
  #work: RunningWork | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #listeners = new Set<(appended: Appended) => void>();

  constructor(
    readonly ref: EntityRef,
    private readonly deps: EntityActorDeps,
    replayed: ReplayState,
  ) {
    this.subject = alertSubject(ref.kind, ref.id);
    this.#state = replayed;
  }

  /** Whether the entity has any history: one never created has none. */
  get exists(): boolean {
    return this.#state.revision > 0;
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

  view(): EntityView {
    this.#assertTrusted();
    return viewOf(this.#state.snapshot);
  }

  /** A call (or a fault): refused with a clear error when the current state cannot take it. */
  request(event: EntityEvent): Promise<Appended> {
    return this.#serialize(async () => {
      this.#assertTrusted();
      const outcome = await this.#apply(event as MachineEvent);
      if (typeof outcome === 'object') return outcome;
      const code = this.exists ? ErrorCodes.InvalidTransition : ErrorCodes.NoSuchEntity;
      throw new OpstreamError(code, this.#refusal(event.type), {
        status: viewOf(this.#state.snapshot).status,
        accepted: acceptedCalls(this.#state.snapshot),
      });
    });
  }

  /** Calls `listener` after each transition this actor persists; returns the unsubscribe. */
  onTransition(listener: (appended: Appended) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts the work the current state declares, if any (after a load, for instance). */
  startDeclaredWork(resumed: boolean): void {
    this.#reconcileWork(resumed);
  }

  stopWork(): void {
    this.#work?.handle?.cancel();
    this.#work = undefined;
  }

  /** Waits until every queued change has been applied. */
  async settle(): Promise<void> {
    await this.#queue.catch(() => undefined);
  }

  #serialize<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(job, job);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #assertTrusted(): void {
    const divergence = this.#state.divergence;
    if (!divergence) return;
    throw new OpstreamError(
      ErrorCodes.EntityDiverged,
      `${this.subject}: history diverges from today's machine at sequence ${divergence.seq} ` +
        `(recorded ${JSON.stringify(divergence.recorded)}, recomputed ${JSON.stringify(divergence.recomputed ?? 'refused')}); ` +
        `the agent will not change it — see \`opstream replay ${this.subject} --verify\``,
      { divergence },
    );
  }

  #refusal(type: string): string {
    const { status } = viewOf(this.#state.snapshot);
    const accepted = acceptedCalls(this.#state.snapshot);
    const what = this.exists ? `${this.ref.kind} ${this.ref.id} is ${status}` : `${this.ref.kind} ${this.ref.id} does not exist`;
    return `${what}: cannot ${type} (accepts ${accepted.length ? accepted.join(', ') : 'nothing now'})`;
  }

  /** Driver events come back here; those of work that was stopped since are dropped. */
  #report(work: RunningWork, event: DriverEvent): Promise<void> {
    return this.#serialize(async () => {
      if (this.#work !== work || this.#state.divergence) return;
      await this.#apply(event, { skipUnchanged: true });
    }).catch((error: unknown) => {
      this.deps.logger.warn('driver event not applied', { subject: this.subject, event: event.type, error: String(error) });
    });
  }

  /**
   * Persists the transition `event` causes. A driver event that changes nothing visible (the
   * same rounded percentage) is not worth an alert: `skipUnchanged` drops it.
   */
  async #apply(event: MachineEvent, options: { skipUnchanged?: boolean } = {}): Promise<Outcome> {
    const { definition, log, now } = this.deps;
    // Machines see the event exactly as it is recorded, so replay reproduces the same context.
    const recorded = redact(event);
    const before = this.#state.snapshot;
    if (!before.can(recorded)) return 'refused';
    const next = nextSnapshot(definition.machine, before as never, recorded as never);
    if (options.skipUnchanged && isDeepStrictEqual(next.value, before.value) && isDeepStrictEqual(next.context, before.context)) {
      return 'unchanged';
    }
    const view = viewOf(next);
    const revision = this.#state.revision + 1;
    const alert: Alert = {
      alertName: this.subject,
      operationInfo: view.operationInfo,
      status: view.status,
      state: view.state,
      event: recorded,
      ...taskChange((before.context as { task: Alert['task'] | null }).task ?? null, next.context),
      machine: { id: definition.machine.id, version: definition.version },
      revision,
      time: now().toISOString(),
    };
    const msgId = `${alert.task?.id ?? this.subject}:${revision}`;
    let seq: number;
    try {
      seq = await log.append(alert, this.#state.lastSeq, msgId);
    } catch (error) {
      if (isConflict(error)) await this.#catchUp();
      throw error;
    }
    this.#state = { snapshot: next, lastSeq: seq, revision };
    this.#reconcileWork(false);
    const appended = { seq, alert };
    for (const listener of this.#listeners) listener(appended);
    return appended;
  }

  /** Another writer appended: fold what it wrote so the next call starts from the truth. */
  async #catchUp(): Promise<void> {
    for await (const stored of this.deps.log.read(this.subject, this.#state.lastSeq + 1)) {
      this.#state = replayOne(this.deps.definition, this.#state, stored);
    }
    // Work belongs to the state we had; whoever moved the entity on owns what follows.
    this.stopWork();
  }

  #reconcileWork(resumed: boolean): void {
    const snapshot = this.#state.snapshot;
    const key = stateKey(snapshot);
    if (this.#work?.stateKey === key) return;
    this.stopWork();
    const { work } = viewOf(snapshot).meta;
    if (!work) return;
    const running: RunningWork = { stateKey: key };
    this.#work = running;
    running.handle = this.deps.driver.start(
      { ...this.ref, work, context: snapshot.context as Record<string, unknown>, resumed },
      (event) => this.#report(running, event),
    );
  }
}
