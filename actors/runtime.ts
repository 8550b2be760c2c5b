// Hosts one EntityActor per entity on the alert stream: loads an entity's history on first use,
// turns calls into tasks, and routes drivers' spontaneous events (faults) to the right actor.
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { MACHINES, type MachineDefinition } from '../machines/index.ts';
import { ErrorCodes, OpstreamError } from '../src/domain/errors.ts';
import { redact } from '../src/domain/redaction.ts';
import { alertSubject } from '../src/domain/subjects.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { AlertLog } from './alert-log.ts';
import type { Driver, EntityEvent, EntityRef } from './drivers/driver.ts';
import { EntityActor, type Appended } from './entity-actor.ts';
import { initialReplayState, replayOne } from './replay.ts';

export type RuntimeOptions = {
  nc: NatsConnection;
  stream: string;
  driver: Driver;
  /** Stamps alerts; tests pin it. Machines never read a clock. */
  now?: () => Date;
  logger?: Logger;
};

export type CallResult = { taskId: string; seq: number };

export class Runtime {
  readonly #actors = new Map<string, Promise<EntityActor>>();
  #stopped = false;

  private constructor(
    /** The agent's connection; API feeds read the stream through it too. */
    readonly nc: NatsConnection,
    private readonly log: AlertLog,
    private readonly driver: Driver,
    private readonly now: () => Date,
    private readonly logger: Logger,
  ) {}

  static async start(options: RuntimeOptions): Promise<Runtime> {
    const log = await AlertLog.open(options.nc, options.stream);
    const runtime = new Runtime(options.nc, log, options.driver, options.now ?? (() => new Date()), options.logger ?? createLogger('runtime'));
    options.driver.connect?.((ref, event) => runtime.deliver(ref, event));
    return runtime;
  }

  get alertLog(): AlertLog {
    return this.log;
  }

  /** The actor of an entity, its history replayed on first use (once, however many ask). */
  entity(ref: EntityRef): Promise<EntityActor> {
    if (this.#stopped) throw new OpstreamError(ErrorCodes.Unavailable, 'the agent is shutting down');
    const key = `${ref.kind}.${ref.id}`;
    let actor = this.#actors.get(key);
    if (!actor) {
      actor = this.#load(ref);
      this.#actors.set(key, actor);
      actor.catch(() => this.#actors.delete(key));
    }
    return actor;
  }

  /** An entity that must already exist (getInfo, and calls other than create). */
  async existing(ref: EntityRef): Promise<EntityActor> {
    const actor = await this.entity(ref);
    if (!actor.exists) throw new OpstreamError(ErrorCodes.NoSuchEntity, `${ref.kind} ${ref.id} does not exist`);
    return actor;
  }

  /**
   * Registers a call as a task: resolves with its id once the transition it causes is in the
   * stream. kwargs are redacted before anything is built from them.
   */
  async call(
    ref: EntityRef,
    methodName: string,
    kwargs: Record<string, unknown>,
    event: (task: TaskInfo) => EntityEvent,
  ): Promise<CallResult> {
    const task: TaskInfo = { id: randomUUID(), methodName, kwargs: redact(kwargs) };
    const actor = await this.entity(ref);
    const { seq } = await actor.request(event(task));
    return { taskId: task.id, seq };
  }

  /** An event no call caused (a fault the hypervisor noticed), durable when this resolves. */
  async deliver(ref: EntityRef, event: EntityEvent): Promise<Appended> {
    const actor = await this.existing(ref);
    return actor.request(event);
  }

  /** Stops all driver work and waits for transitions in flight; the stream keeps the rest. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const actors = await Promise.allSettled(this.#actors.values());
    for (const result of actors) if (result.status === 'fulfilled') result.value.stopWork();
    await Promise.all(actors.map((result) => (result.status === 'fulfilled' ? result.value.settle() : undefined)));
  }

  async #load(ref: EntityRef): Promise<EntityActor> {
    const definition = (MACHINES as Partial<Record<string, MachineDefinition>>)[ref.kind];
    if (!definition) throw new OpstreamError(ErrorCodes.NoSuchEntity, `no machine for entity kind ${ref.kind}`);
    const subject = alertSubject(ref.kind, ref.id);
    let state = initialReplayState(definition, ref.id);
    for await (const stored of this.log.read(subject)) state = replayOne(definition, state, stored);
    if (state.divergence) {
      this.logger.error('history diverges from the machine; refusing to own the entity', {
        subject,
        divergence: state.divergence,
      });
    }
    const deps = { definition, log: this.log, driver: this.driver, now: this.now, logger: this.logger };
    return new EntityActor(ref, deps, state);
  }
}
