// What every getInfo answers about an entity, read off its actor.
import type { EntityActor } from '../../../actors/entity-actor.ts';

/**
 * What every getInfo answers: status, OperationInfo, the running task, the last sequence, and the
 * host that runs the entity (any agent answers from its copy; `Unknown` while that host is lost).
 */
export function entityInfo(actor: EntityActor): { status: string; operationInfo: unknown; task: unknown; seq: number; hostId?: string } {
  const { status, operationInfo, task } = actor.view();
  const hostId = actor.hostId;
  return { status, operationInfo, task, seq: actor.lastSeq, ...(hostId === undefined ? {} : { hostId }) };
}

/** A context field of the entity's state (size, baseImageId, params, ...). */
export function contextOf<T>(actor: EntityActor, field: string): T {
  return (actor.snapshot.context as Record<string, unknown>)[field] as T;
}
