// Every entity kind's machine, with the version recorded in each alert. Bump a version when a
// change alters what recorded history replays to; replay refuses snapshots of another version.
import type { AnyStateMachine } from 'xstate';
import { EntityKinds, type EntityKind } from '../src/domain/subjects.ts';
import { GLUSTER_VOLUME_MACHINE_VERSION, glusterVolumeMachine } from './gluster-volume.ts';
import { IMAGE_MACHINE_VERSION, imageMachine } from './image.ts';
import { JOB_MACHINE_VERSION, jobMachine } from './job.ts';
import { STORAGE_CONNECTION_MACHINE_VERSION, storageConnectionMachine } from './storage-connection.ts';
import { VM_MACHINE_VERSION, vmMachine } from './vm.ts';
import { VM_DISK_MACHINE_VERSION, vmDiskMachine } from './vm-disk.ts';

export type MachineDefinition = {
  kind: EntityKind;
  /** The runtime treats every machine alike; the API methods give each its own typed events. */
  machine: AnyStateMachine;
  version: number;
  /**
   * An entity of this kind comes into being with its first driver report, not with a call: a
   * sub-object its parent's driver tells of (a VM's disk during the VM's migration).
   */
  createdByReports?: boolean;
};

export const MACHINES: Record<EntityKind, MachineDefinition> = {
  [EntityKinds.VM]: { kind: EntityKinds.VM, machine: vmMachine, version: VM_MACHINE_VERSION },
  [EntityKinds.VMDisk]: { kind: EntityKinds.VMDisk, machine: vmDiskMachine, version: VM_DISK_MACHINE_VERSION, createdByReports: true },
  [EntityKinds.Image]: { kind: EntityKinds.Image, machine: imageMachine, version: IMAGE_MACHINE_VERSION },
  [EntityKinds.StorageConnection]: {
    kind: EntityKinds.StorageConnection,
    machine: storageConnectionMachine,
    version: STORAGE_CONNECTION_MACHINE_VERSION,
  },
  [EntityKinds.GlusterVolume]: { kind: EntityKinds.GlusterVolume, machine: glusterVolumeMachine, version: GLUSTER_VOLUME_MACHINE_VERSION },
  [EntityKinds.Job]: { kind: EntityKinds.Job, machine: jobMachine, version: JOB_MACHINE_VERSION },
};
