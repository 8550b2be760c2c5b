// A VM's disk (`vdsm.VM.<vmId>.Disk.<diskId>`): the storage side of the VM's operations. The seed
// says a migration "is available on the image operationInfo": the VM's alert says the VM is
// migrating, each disk's alert says how far its data has got. A disk runs no work of its own —
// the VM's driver, while it migrates the VM, reports for each disk — so its events are the
// STORAGE_* ones below, and a disk entity comes into being with its first report.
import { assign, setup } from 'xstate';
import type { DriverEvent, EntityContext, ErrorTuple, StateMeta } from './entity.ts';
import { endTask, scaleProgress } from './entity.ts';

export const VM_DISK_MACHINE_VERSION = 1;

export type VmDiskContext = EntityContext & {
  /** The entity id: `<vmId>.<diskId>`. */
  diskEntityId: string;
  /** Where the disk's data is going or went; null before its first migration. */
  dstHost: string | null;
};

/** What the VM's driver reports about one disk while it migrates the VM. */
export type VmDiskEvent =
  | {
      type: 'STORAGE_MIGRATION_STARTED';
      vmId: string;
      /** The Image entity behind the disk, when it is one. */
      imageId?: string;
      dstHost: string;
      /** The VM's migration task: the seed's "reported as a task" side of the same migration. */
      taskId?: string;
    }
  | { type: 'STORAGE_PROGRESS'; percentage: number }
  | { type: 'STORAGE_DONE' }
  | { type: 'STORAGE_FAILED'; error: ErrorTuple }
  /** What the runtime records when an agent restart ends the migration (onResume `fail`). */
  | Extract<DriverEvent, { type: 'WORK_FAILED' }>;

/** lastError of a disk whose VM's migration ended before its data had been copied. */
export const STORAGE_MIGRATION_ABORTED = 140;

/** A settled disk names no running task; the rest of what its last migration said stays. */
function withoutTask(extraData: Record<string, unknown> | undefined): Record<string, unknown> {
  const { taskId: _taskId, ...rest } = extraData ?? {};
  return rest;
}

const meta = (value: StateMeta): StateMeta => value;
const settled = { stage: [1, 1] as [number, number] };

export const vmDiskMachine = setup({
  types: {
    context: {} as VmDiskContext,
    events: {} as VmDiskEvent,
    input: {} as { id: string },
  },
  actions: {
    begin: assign(({ event }) =>
      event.type === 'STORAGE_MIGRATION_STARTED'
        ? {
            dstHost: event.dstHost,
            percentage: 0,
            lastError: [0, ''] as ErrorTuple,
            extraData: {
              vmId: event.vmId,
              dstHost: event.dstHost,
              ...(event.imageId ? { imageId: event.imageId } : {}),
              ...(event.taskId ? { taskId: event.taskId } : {}),
            },
          }
        : {},
    ),
    trackProgress: assign(({ event }) => (event.type === 'STORAGE_PROGRESS' ? { percentage: scaleProgress(event.percentage, 0, 100) } : {})),
    done: assign(({ context }) => ({ ...endTask(), extraData: withoutTask(context.extraData) })),
    failed: assign(({ context, event }) => ({
      ...endTask('error' in event ? event.error : [1, 'unknown failure']),
      extraData: withoutTask(context.extraData),
    })),
  },
}).createMachine({
  id: 'vmDisk',
  // A disk never holds a task of its own: the migration is its VM's task (extraData.taskId).
  context: ({ input }) => ({ diskEntityId: input.id, dstHost: null, task: null, percentage: -1, lastError: [0, ''] }),
  initial: 'Idle',
  states: {
    Idle: {
      meta: meta({
        status: 'OK',
        operation: { operationDescription: 'Ready', stageDescription: '', ...settled, extraData: {} },
      }),
      on: { STORAGE_MIGRATION_STARTED: { target: 'Migrating', actions: 'begin' } },
    },
    Migrating: {
      meta: meta({
        status: 'Locked',
        operation: { operationDescription: 'Migration', stageDescription: 'copying data', stage: [1, 2], extraData: { state: 'migrating' } },
        // No work here: the VM's driver does it inside the VM's migration and reports it. After an
        // agent restart that migration is failed (the VM's `copyingMemory` declares `fail`), so
        // the disk fails too rather than wait for reports that will never come.
        onResume: 'fail',
        cancel: { policy: 'refuse', reason: "the disk follows its VM's migration: cancel the VM's migration task (extraData.taskId)" },
      }),
      on: {
        STORAGE_PROGRESS: { actions: 'trackProgress' },
        STORAGE_DONE: { target: 'Idle', actions: 'done' },
        STORAGE_FAILED: { target: 'Failed', actions: 'failed' },
        // The resume-after-restart failure the runtime records (RESUME_FAILED).
        WORK_FAILED: { target: 'Failed', actions: 'failed' },
      },
    },
    Failed: {
      meta: meta({
        status: 'OK',
        operation: { operationDescription: 'Failed', stageDescription: '', ...settled, extraData: { state: 'migration failed' } },
      }),
      on: { STORAGE_MIGRATION_STARTED: { target: 'Migrating', actions: 'begin' } },
    },
  },
});
