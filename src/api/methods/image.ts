// Image.*: create (standalone or a layer), copy, merge, delete — checks across images run in one order.
import { z } from 'zod';
import type { EntityActor } from '../../../actors/entity-actor.ts';
import type { Runtime } from '../../../actors/runtime.ts';
import { ErrorCodes, OpstreamError } from '../../domain/errors.ts';
import { EntityId, EntityKinds } from '../../domain/subjects.ts';
import { defineMethod } from '../method.ts';
import { entityCall } from './entity-call.ts';
import { contextOf, entityInfo } from './entity-info.ts';

const image = (imageId: string) => ({ kind: EntityKinds.Image, id: imageId });
const ImageRef = z.strictObject({ imageId: EntityId });
/** Sizes in bytes, up to 64 TiB: a typo of a few orders of magnitude is caught here. */
const Size = z.number().int().positive().max(2 ** 46);

/**
 * Image calls check other images (a base, a source, the layers on one) before they append. The
 * check and the append run alone among image calls, so no interleaving — not even one JSON-RPC
 * batch of a copy, a layer and a delete of the same source — can act on a stale check.
 */
const IMAGE_GRAPH = 'images';

/** An image that exists and is OK (not Locked by an operation, not Illegal). */
async function usableImage(runtime: Runtime, imageId: string, role: string): Promise<EntityActor> {
  const actor = await runtime.existing(image(imageId)).catch(() => undefined);
  if (!actor || actor.view().status === 'Absent') {
    throw new OpstreamError(ErrorCodes.NoSuchEntity, `${role} image ${imageId} does not exist`);
  }
  const { status } = actor.view();
  if (status !== 'OK') throw new OpstreamError(ErrorCodes.InvalidTransition, `${role} image ${imageId} is ${status}, not OK`);
  return actor;
}

/** Why deleting or merging `imageId` would pull data from under another image, if it would. */
function dependents(runtime: Runtime, imageId: string): string | undefined {
  for (const actor of runtime.entitiesOf(EntityKinds.Image)) {
    const { status } = actor.view();
    if (status === 'Absent') continue;
    if (contextOf<string | null>(actor, 'sourceImageId') === imageId) return `image ${imageId} is the source of a copy in progress to ${actor.ref.id}`;
    if (contextOf<string | null>(actor, 'baseImageId') === imageId) return `image ${imageId} is the base of ${actor.ref.id}; merge or delete that layer first`;
  }
  // A disk of a VM whose QEMU may run (any state but Down) stays until the VM is destroyed.
  for (const actor of runtime.entitiesOf(EntityKinds.VM)) {
    const { status } = actor.view();
    if (status === 'Down') continue;
    const disks = contextOf<{ disks?: Array<{ imageId?: string }> }>(actor, 'params')?.disks ?? [];
    if (disks.some((disk) => disk.imageId === imageId)) return `image ${imageId} is a disk of VM ${actor.ref.id} (${status}); destroy the VM first`;
  }
  return undefined;
}

const deleteImage = entityCall('Image.delete', EntityKinds.Image, 'imageId', 'DELETE');

export const imageMethods = [
  defineMethod({
    name: 'Image.create',
    access: 'write',
    params: z.strictObject({ imageId: EntityId, size: Size.optional(), baseImageId: EntityId.optional(), hostId: EntityId.optional() }),
    handler: async ({ imageId, size, baseImageId }, { runtime, job }) => runtime.exclusive(IMAGE_GRAPH, async () => {
      let virtualSize = size ?? null;
      if (baseImageId !== undefined) {
        if (baseImageId === imageId) throw new OpstreamError(ErrorCodes.InvalidParams, `image ${imageId} cannot be its own base`);
        const base = await usableImage(runtime, baseImageId, 'base');
        virtualSize ??= contextOf<number | null>(base, 'size');
      } else if (size === undefined) {
        throw new OpstreamError(ErrorCodes.InvalidParams, 'Image.create: size (bytes) is required for an image without a base');
      }
      const kwargs = { imageId, size, baseImageId };
      const { taskId } = await runtime.call(image(imageId), 'Image.create', kwargs, (task) => ({
        type: 'CREATE',
        task,
        size: virtualSize,
        baseImageId: baseImageId ?? null,
      }), job);
      return { taskId };
    }),
  }),
  defineMethod({
    name: 'Image.copy',
    access: 'write',
    params: z.strictObject({ imageId: EntityId, dstImageId: EntityId }),
    // The copy is the destination's operation: it comes into being from the source's data.
    handler: async ({ imageId, dstImageId }, { runtime, job }) => runtime.exclusive(IMAGE_GRAPH, async () => {
      if (dstImageId === imageId) throw new OpstreamError(ErrorCodes.InvalidParams, `cannot copy image ${imageId} onto itself`);
      const source = await usableImage(runtime, imageId, 'source');
      const destination = await runtime.existing(image(dstImageId)).catch(() => undefined);
      if (destination && destination.view().status !== 'Absent') {
        throw new OpstreamError(ErrorCodes.InvalidTransition, `destination image ${dstImageId} already exists (${destination.view().status}); delete it first or choose another id`);
      }
      const { taskId } = await runtime.call(image(dstImageId), 'Image.copy', { imageId, dstImageId }, (task) => ({
        type: 'COPY_FROM',
        task,
        sourceImageId: imageId,
        size: contextOf<number | null>(source, 'size'),
      }), job);
      return { taskId };
    }),
  }),
  defineMethod({
    name: 'Image.merge',
    access: 'write',
    params: ImageRef,
    handler: async ({ imageId }, { runtime, job }) => runtime.exclusive(IMAGE_GRAPH, async () => {
      const layer = await usableImage(runtime, imageId, 'the');
      const base = contextOf<string | null>(layer, 'baseImageId');
      if (!base) throw new OpstreamError(ErrorCodes.InvalidTransition, `image ${imageId} has no base to merge into`);
      const blocked = dependents(runtime, imageId);
      if (blocked) throw new OpstreamError(ErrorCodes.InvalidTransition, blocked);
      const { taskId } = await runtime.call(image(imageId), 'Image.merge', { imageId }, (task) => ({ type: 'MERGE', task }), job);
      return { taskId };
    }),
  }),
  defineMethod({
    name: 'Image.delete',
    access: 'write',
    params: ImageRef,
    handler: async (params, context) =>
      context.runtime.exclusive(IMAGE_GRAPH, async () => {
        const blocked = dependents(context.runtime, params.imageId);
        if (blocked) throw new OpstreamError(ErrorCodes.InvalidTransition, blocked);
        return deleteImage.handler(params, context);
      }),
  }),
  defineMethod({
    name: 'Image.getInfo',
    access: 'read',
    params: ImageRef,
    handler: async ({ imageId }, { runtime }) => {
      const actor = await runtime.existing(image(imageId));
      return {
        imageId,
        ...entityInfo(actor),
        size: contextOf<number | null>(actor, 'size'),
        baseImageId: contextOf<string | null>(actor, 'baseImageId'),
      };
    },
  }),
];
