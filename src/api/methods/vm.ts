import { z } from 'zod';
import { EntityId, EntityKinds } from '../../domain/subjects.ts';
import { defineMethod, type ApiContext } from '../method.ts';
import { boundedKwargs } from '../limits.ts';
import { entityInfo } from './entity-info.ts';

const VmRef = z.strictObject({ vmId: EntityId });
const vm = (vmId: string) => ({ kind: EntityKinds.VM, id: vmId });

/** A call that only names the VM: its event carries just the task. */
const simpleCall = (name: string, type: 'PAUSE' | 'CONT' | 'DESTROY') =>
  defineMethod({
    name,
    params: VmRef,
    handler: async ({ vmId }, { runtime }: ApiContext) => {
      const { taskId } = await runtime.call(vm(vmId), name, { vmId }, (task) => ({ type, task }));
      return { taskId };
    },
  });

export const vmMethods = [
  defineMethod({
    name: 'VM.create',
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
  simpleCall('VM.pause', 'PAUSE'),
  simpleCall('VM.cont', 'CONT'),
  simpleCall('VM.destroy', 'DESTROY'),
  defineMethod({
    name: 'VM.migrate',
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
    params: VmRef,
    handler: async ({ vmId }, { runtime }) => ({ vmId, ...entityInfo(await runtime.existing(vm(vmId))) }),
  }),
];
