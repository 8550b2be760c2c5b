// VM.*: create (with its definition and disks), pause, cont, migrate, destroy, getInfo.
import { z } from 'zod';
import type { Runtime } from '../../../actors/runtime.ts';
import { ErrorCodes, OpstreamError } from '../../domain/errors.ts';
import { EntityId, EntityKinds } from '../../domain/subjects.ts';
import { defineMethod } from '../method.ts';
import { entityCall } from './entity-call.ts';
import { boundedKwargs } from '../limits.ts';
import { entityInfo } from './entity-info.ts';

const VmRef = z.strictObject({ vmId: EntityId });
const vm = (vmId: string) => ({ kind: EntityKinds.VM, id: vmId });

/** The parts of a VM definition a hypervisor reads; anything else is kept as given. */
const VmDefinition = z.looseObject({
  vmId: EntityId,
  /** The host to run it on (the call goes to that agent); default the agent that got the call. */
  hostId: EntityId.optional(),
  memoryMiB: z.number().int().min(16).max(4 * 1024 * 1024).optional(),
  cpus: z.number().int().min(1).max(288).optional(),
  // A disk is an Image entity (`imageId`) or known by its own `diskId`; either names the disk's
  // alerts, `vdsm.VM.<vmId>.Disk.<diskId ?? imageId>`, so no two disks of a VM may share it.
  disks: z
    .array(
      z
        .strictObject({ imageId: EntityId.optional(), diskId: EntityId.optional() })
        .refine((disk) => disk.imageId !== undefined || disk.diskId !== undefined, { error: 'a disk needs an imageId or a diskId' }),
    )
    .max(16)
    .refine((disks) => new Set(disks.map((disk) => disk.diskId ?? disk.imageId)).size === disks.length, {
      error: 'two disks have the same id (diskId, or imageId where no diskId is given)',
    })
    .optional(),
});

/** A VM starts only on disks that are Image entities in status OK (not Locked, not Illegal). */
async function assertDisksUsable(runtime: Runtime, disks: Array<{ imageId?: string }>): Promise<void> {
  for (const { imageId } of disks) {
    if (imageId === undefined) continue;
    const image = await runtime.entity({ kind: EntityKinds.Image, id: imageId });
    const status = image.exists ? image.view().status : 'Absent';
    if (status === 'Absent') throw new OpstreamError(ErrorCodes.NoSuchEntity, `disk image ${imageId} does not exist`);
    if (status !== 'OK') throw new OpstreamError(ErrorCodes.InvalidTransition, `disk image ${imageId} is ${status}, not OK: a VM cannot start on it`);
  }
}

export const vmMethods = [
  defineMethod({
    name: 'VM.create',
    access: 'write',
    // Everything beside vmId is the VM's definition (memory, cpus, disks, ...), kept as kwargs.
    params: VmDefinition.superRefine(boundedKwargs),
    handler: async (params, { runtime, job }) => {
      await assertDisksUsable(runtime, params.disks ?? []);
      const { taskId } = await runtime.call(vm(params.vmId), 'VM.create', params, (task) => {
        const { vmId: _vmId, ...definition } = task.kwargs;
        return { type: 'CREATE', task, params: definition };
      }, job);
      return { taskId };
    },
  }),
  entityCall('VM.pause', EntityKinds.VM, 'vmId', 'PAUSE'),
  entityCall('VM.cont', EntityKinds.VM, 'vmId', 'CONT'),
  entityCall('VM.destroy', EntityKinds.VM, 'vmId', 'DESTROY'),
  defineMethod({
    name: 'VM.migrate',
    access: 'write',
    // The destination host's id is a bus subject token (`opstream.internal.<dstHost>.>`).
    params: z.strictObject({ vmId: EntityId, dstHost: EntityId }),
    handler: async ({ vmId, dstHost }, { runtime, job }) => {
      const { taskId } = await runtime.call(vm(vmId), 'VM.migrate', { vmId, dstHost }, (task) => ({
        type: 'MIGRATE',
        task,
        dstHost,
      }), job);
      return { taskId };
    },
  }),
  defineMethod({
    name: 'VM.getInfo',
    access: 'read',
    params: VmRef,
    handler: async ({ vmId }, { runtime }) => ({ vmId, ...entityInfo(await runtime.existing(vm(vmId))) }),
  }),
];
