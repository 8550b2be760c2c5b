// What every getInfo answers about an entity, read off its actor.
import type { EntityActor } from '../../../actors/entity-actor.ts';

/** What every getInfo answers: status, OperationInfo, the running task, and the last sequence. */
export function entityInfo(actor: EntityActor): { status: string; operationInfo: unknown; task: unknown; seq: number } {
  const { status, operationInfo, task } = actor.view();
  return { status, operationInfo, task, seq: actor.lastSeq };
}

/** A context field of the entity's state (size, baseImageId, params, ...). */
export function contextOf<T>(actor: EntityActor, field: string): T {
  return (actor.snapshot.context as Record<string, unknown>)[field] as T;
}
