import { z } from 'zod';
import { EntityId, EntityKinds } from '../../domain/subjects.ts';
import { defineMethod } from '../method.ts';
import { entityCall } from './entity-call.ts';
import { boundedKwargs } from '../limits.ts';
import { entityInfo } from './entity-info.ts';

const VmRef = z.strictObject({ vmId: EntityId });
const vm = (vmId: string) => ({ kind: EntityKinds.VM, id: vmId });


export const vmMethods = [
  defineMethod({
    name: 'VM.create',
    access: 'write',
    // Everything beside vmId is the VM's definition (memory, cpus, disks, ...), kept as kwargs.
    params: z.looseObject({ vmId: EntityId }).superRefine(boundedKwargs),
    handler: async (params, { runtime }) => {
      const { taskId } = await runtime.call(vm(params.vmId), 'VM.create', params, (task) => {
        const { vmId: _vmId, ...definition } = task.kwargs;
        return { type: 'CREATE', task, params: definition };
      });
      return { taskId };
    },
  }),
  entityCall('VM.pause', EntityKinds.VM, 'vmId', 'PAUSE'),
  entityCall('VM.cont', EntityKinds.VM, 'vmId', 'CONT'),
  entityCall('VM.destroy', EntityKinds.VM, 'vmId', 'DESTROY'),
  defineMethod({
    name: 'VM.migrate',
    access: 'write',
    params: z.strictObject({ vmId: EntityId, dstHost: z.string().min(1).max(255) }),
    handler: async ({ vmId, dstHost }, { runtime }) => {
      const { taskId } = await runtime.call(vm(vmId), 'VM.migrate', { vmId, dstHost }, (task) => ({
        type: 'MIGRATE',
        task,
        dstHost,
      }));
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
