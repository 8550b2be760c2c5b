// The shape most verbs share: an entity id in, one event on that entity out, the task answered.
import { z } from 'zod';
import { EntityId, type EntityKind } from '../../domain/subjects.ts';
import { defineMethod, type ApiContext } from '../method.ts';

/**
 * A verb whose only param is the entity's id and whose event carries only the task
 * (`VM.pause {vmId}`, `GlusterVolume.start {volumeName}`, ...).
 */
export function entityCall<IdField extends string>(name: string, kind: EntityKind, idField: IdField, type: string) {
  // zod cannot infer an object type from a computed key; this is exactly that object.
  const params = z.strictObject({ [idField]: EntityId }) as unknown as z.ZodType<Record<IdField, string>>;
  return defineMethod({
    name,
    access: 'write',
    params,
    handler: async (given: Record<IdField, string>, { runtime, job }: ApiContext) => {
      const id = given[idField];
      const { taskId } = await runtime.call({ kind, id }, name, { [idField]: id }, (task) => ({ type, task }), job);
      return { taskId };
    },
  });
}
