// Every entity kind's machine, with the version recorded in each alert. Bump a version when a
// change alters what recorded history replays to; replay refuses snapshots of another version.
import { EntityKinds, type EntityKind } from '../src/domain/subjects.ts';
import { VM_MACHINE_VERSION, vmMachine } from './vm.ts';

export type MachineDefinition = {
  kind: EntityKind;
  machine: typeof vmMachine;
  version: number;
};

export const MACHINES = {
  [EntityKinds.VM]: { kind: EntityKinds.VM, machine: vmMachine, version: VM_MACHINE_VERSION },
} as const satisfies Partial<Record<EntityKind, MachineDefinition>>;
