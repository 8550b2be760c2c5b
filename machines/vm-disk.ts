// A VM's disk (`vdsm.VM.<vmId>.Disk.<diskId>`): the storage side of the operations it takes part
// in. The seed says a migration "is available on the image operationInfo": the VM's alert says
// the VM is migrating, each disk's alert says how far its data has got; a copy of an image that
// is a VM's disk shows on that disk the same way. A disk runs no work of its own — the VM's driver
// while it migrates the VM, the copy's work while it reads the disk, report for it — so its
// events are the STORAGE_* ones below, and a disk entity comes into being with its first report.
import { LastErrorCodes } from '../src/domain/last-errors.ts';
import { assign, setup } from 'xstate';
import type { DriverEvent, EntityContext, ErrorTuple, StateMeta } from './entity.ts';
import { endTask, scaleProgress } from './entity.ts';

export const VM_DISK_MACHINE_VERSION = 1;

export type VmDiskContext = EntityContext & {
  /** The entity id: `<vmId>.<diskId>`. */
  diskEntityId: string;
  /** Where the disk's data is going or went; null before its first migration. */
  dstHost: string | null;
  /**
   * The operation the disk is in (the key of the entity whose work it is: `VM.<vmId>`,
   * `Storage.Image.<dstImageId>`): only its reports move the disk, so two operations touching
   * one disk cannot mix their progress.
   */
  operation: string | null;
};

/** What the VM's driver reports about one disk while it migrates the VM. */
export type VmDiskEvent =
  | {
      type: 'STORAGE_MIGRATION_STARTED';
      operation: string;
      vmId: string;
      /** The Image entity behind the disk, when it is one. */
      imageId?: string;
      dstHost: string;
      /** The VM's migration task: the seed's "reported as a task" side of the same migration. */
      taskId?: string;
    }
  | {
      type: 'STORAGE_COPY_STARTED';
      operation: string;
      vmId: string;
      /** The image the disk is, read by the copy. */
      imageId: string;
      dstImageId: string;
      /** The copy's task (an operation of the destination image). */
      taskId?: string;
    }
  | { type: 'STORAGE_PROGRESS'; operation: string; percentage: number }
  | { type: 'STORAGE_DONE'; operation: string }
  | { type: 'STORAGE_FAILED'; operation: string; error: ErrorTuple }
  /** What the runtime records when an agent restart ends the migration (onResume `fail`). */
  | Extract<DriverEvent, { type: 'WORK_FAILED' }>;

/** lastError of a disk whose operation (its VM's migration, a copy) ended before its part did. */
export const STORAGE_OPERATION_ABORTED = LastErrorCodes.StorageOperationAborted;

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
  guards: {
    /** A report of the operation the disk is in (not of another one that touched it meanwhile). */
    ours: ({ context, event }) => 'operation' in event && event.operation === context.operation,
  },
  actions: {
    begin: assign(({ event }) =>
      event.type === 'STORAGE_MIGRATION_STARTED'
        ? {
            operation: event.operation,
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
        : event.type === 'STORAGE_COPY_STARTED'
          ? {
              operation: event.operation,
              percentage: 0,
              lastError: [0, ''] as ErrorTuple,
              extraData: { vmId: event.vmId, imageId: event.imageId, dstImageId: event.dstImageId, ...(event.taskId ? { taskId: event.taskId } : {}) },
            }
          : {},
    ),
    trackProgress: assign(({ event }) => (event.type === 'STORAGE_PROGRESS' ? { percentage: scaleProgress(event.percentage, 0, 100) } : {})),
    done: assign(({ context }) => ({ ...endTask(), operation: null, extraData: withoutTask(context.extraData) })),
    failed: assign(({ context, event }) => ({
      ...endTask('error' in event ? event.error : [LastErrorCodes.Failed, 'unknown failure']),
      operation: null,
      extraData: withoutTask(context.extraData),
    })),
  },
}).createMachine({
  id: 'vmDisk',
  // A disk never holds a task of its own: the migration is its VM's task (extraData.taskId).
  context: ({ input }) => ({ diskEntityId: input.id, dstHost: null, operation: null, task: null, percentage: -1, lastError: [0, ''] }),
  initial: 'Idle',
  states: {
    Idle: {
      meta: meta({
        status: 'OK',
        operation: { operationDescription: 'Ready', stageDescription: '', ...settled, extraData: {} },
      }),
      on: {
        STORAGE_MIGRATION_STARTED: { target: 'Migrating', actions: 'begin' },
        STORAGE_COPY_STARTED: { target: 'Copying', actions: 'begin' },
      },
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
        STORAGE_PROGRESS: { guard: 'ours', actions: 'trackProgress' },
        STORAGE_DONE: { guard: 'ours', target: 'Idle', actions: 'done' },
        STORAGE_FAILED: { guard: 'ours', target: 'Failed', actions: 'failed' },
        // The resume-after-restart failure the runtime records (RESUME_FAILED).
        WORK_FAILED: { target: 'Failed', actions: 'failed' },
      },
    },
    // The disk is the source of a copy: it stays usable (OK), the copy reads it.
    Copying: {
      meta: meta({
        status: 'OK',
        operation: { operationDescription: 'Copying', stageDescription: 'copying data', stage: [1, 2], extraData: { state: 'copying' } },
        // As Migrating: the copy's work reports here; a restart fails the disk's part, and the
        // copy, which restarts, begins it again.
        onResume: 'fail',
        cancel: { policy: 'refuse', reason: "the disk is read by a copy: cancel the copy's task (extraData.taskId)" },
      }),
      on: {
        STORAGE_PROGRESS: { guard: 'ours', actions: 'trackProgress' },
        STORAGE_DONE: { guard: 'ours', target: 'Idle', actions: 'done' },
        STORAGE_FAILED: { guard: 'ours', target: 'Failed', actions: 'failed' },
        WORK_FAILED: { target: 'Failed', actions: 'failed' },
      },
    },
    Failed: {
      meta: meta({
        status: 'OK',
        operation: { operationDescription: 'Failed', stageDescription: '', ...settled, extraData: { state: 'failed' } },
      }),
      on: {
        STORAGE_MIGRATION_STARTED: { target: 'Migrating', actions: 'begin' },
        STORAGE_COPY_STARTED: { target: 'Copying', actions: 'begin' },
      },
    },
  },
});
