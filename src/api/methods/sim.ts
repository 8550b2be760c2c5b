// Sim.*: fault injection into the simulated hypervisor (served only where the simulator runs VMs).
import { z } from 'zod';
import { SIM_FAULTS } from '../../../actors/drivers/simulated-driver.ts';
import { ErrorCodes, OpstreamError } from '../../domain/errors.ts';
import { EntityId, EntityKinds } from '../../domain/subjects.ts';
import { defineMethod } from '../method.ts';

export const simMethods = [
  defineMethod({
    name: 'Sim.injectFault',
    access: 'write',
    params: z.strictObject({ vmId: EntityId, fault: z.enum(SIM_FAULTS) }),
    handler: async ({ vmId, fault }, { sim, runtime }) => {
      if (!sim) throw new OpstreamError(ErrorCodes.MethodNotFound, 'Sim.injectFault needs the simulated driver');
      await runtime.existing({ kind: EntityKinds.VM, id: vmId });
      await sim.injectFault({ kind: EntityKinds.VM, id: vmId }, fault);
      return {};
    },
  }),
];
