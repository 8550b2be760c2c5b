// A disk image (`vdsm.Storage.Image.<id>`). Its status uses VDSM's volume words — OK, Locked
// while an operation holds it, Illegal when broken — and extraData.imageState the seed's:
// "optimized" (standalone), "degraded" (a snapshot layer read through its base) or "broken"
// (a copy or merge failed on it). A failure leaves it Illegal with lastError, never pretending.
import { assign, setup } from 'xstate';
import type { TaskInfo } from '../src/domain/task.ts';
import type { CancelEvent, DriverEvent, EntityContext, StateMeta } from './entity.ts';
import { ALREADY_CANCELLING, beginTask, cancelledError, endTask, scaleProgress } from './entity.ts';
import { LastErrorCodes } from '../src/domain/last-errors.ts';

/** 2: Absent shows operationDescription "Absent" (version 1 showed "Deleting", stage "deleted"). */
export const IMAGE_MACHINE_VERSION = 2;

export const IMAGE_STATES = ['optimized', 'degraded', 'broken'] as const;
export type ImageState = (typeof IMAGE_STATES)[number];

export type ImageContext = EntityContext & {
  imageId: string;
  /** Virtual size in bytes (null until known). */
  size: number | null;
  /** The image this one is a snapshot layer on, if any. */
  baseImageId: string | null;
  /** While copying: the image the data comes from. */
  sourceImageId: string | null;
  extraData: { imageState?: ImageState; mergedInto?: string };
};

export type ImageCallEvent =
  | { type: 'CREATE'; task: TaskInfo; size: number | null; baseImageId: string | null }
  | { type: 'COPY_FROM'; task: TaskInfo; sourceImageId: string; size: number | null }
  | { type: 'MERGE'; task: TaskInfo }
  | { type: 'DELETE'; task: TaskInfo };

export type ImageEvent = ImageCallEvent | DriverEvent | CancelEvent;

const meta = (value: StateMeta): StateMeta => value;
const settled = { stage: [1, 1] as [number, number] };

export const imageMachine = setup({
  types: {
    context: {} as ImageContext,
    events: {} as ImageEvent,
    input: {} as { id: string },
  },
  actions: {
    beginTask: assign(({ event }) => ('task' in event ? beginTask(event.task) : {})),
    beginCreate: assign(({ event }) =>
      event.type === 'CREATE' ? { size: event.size, baseImageId: event.baseImageId, sourceImageId: null, extraData: {} } : {},
    ),
    beginCopy: assign(({ event }) =>
      event.type === 'COPY_FROM' ? { size: event.size, baseImageId: null, sourceImageId: event.sourceImageId, extraData: {} } : {},
    ),
    becomeReady: assign(({ context }) => ({
      ...endTask(),
      sourceImageId: null,
      extraData: { imageState: context.baseImageId ? ('degraded' as const) : ('optimized' as const) },
    })),
    becomeBroken: assign(({ event }) => ({
      ...endTask(event.type === 'WORK_FAILED' ? event.error : [LastErrorCodes.Failed, 'unknown failure']),
      sourceImageId: null,
      extraData: { imageState: 'broken' as const },
    })),
    becomeAbsentAfterFailure: assign(({ event }) => ({
      ...endTask(event.type === 'WORK_FAILED' ? event.error : [LastErrorCodes.Failed, 'unknown failure']),
      size: null,
      baseImageId: null,
      sourceImageId: null,
      extraData: {},
    })),
    becomeMerged: assign(({ context }) => ({
      ...endTask(),
      extraData: context.baseImageId ? { mergedInto: context.baseImageId } : {},
      size: null,
      baseImageId: null,
    })),
    copyCancelled: assign(() => ({
      ...endTask(cancelledError('the copy was stopped and its partial destination removed')),
      size: null,
      baseImageId: null,
      sourceImageId: null,
      extraData: {},
    })),
    becomeDeleted: assign(() => ({ ...endTask(), size: null, baseImageId: null, sourceImageId: null, extraData: {} })),
    trackProgress: assign(({ event }) =>
      event.type === 'WORK_PROGRESS' ? { percentage: scaleProgress(event.percentage, 0, 100) } : {},
    ),
  },
  guards: {
    hasBase: ({ context }) => context.baseImageId !== null,
  },
}).createMachine({
  id: 'image',
  context: ({ input }) => ({
    imageId: input.id,
    size: null,
    baseImageId: null,
    sourceImageId: null,
    task: null,
    percentage: -1,
    lastError: [0, ''],
    extraData: {},
  }),
  initial: 'Absent',
  states: {
    Absent: {
      meta: meta({
        status: 'Absent',
        operation: { operationDescription: 'Absent', stageDescription: '', ...settled, extraData: {} },
      }),
      on: {
        CREATE: { target: 'Creating', actions: ['beginTask', 'beginCreate'] },
        COPY_FROM: { target: 'Copying', actions: ['beginTask', 'beginCopy'] },
      },
    },
    Creating: {
      meta: meta({
        status: 'Locked',
        operation: { operationDescription: 'Creating', stageDescription: 'allocating', stage: [1, 2], extraData: {} },
        work: 'createImage',
        onResume: 'restart',
        cancel: { policy: 'rollForward', reason: 'allocating takes a moment; delete the image afterwards' },
      }),
      on: {
        WORK_PROGRESS: { actions: 'trackProgress' },
        WORK_DONE: { target: 'Ready', actions: 'becomeReady' },
        // Nothing usable was made: the image does not exist, and lastError says why.
        WORK_FAILED: { target: 'Absent', actions: 'becomeAbsentAfterFailure' },
      },
    },
    Copying: {
      meta: meta({
        status: 'Locked',
        operation: { operationDescription: 'Copying', stageDescription: 'copying data', stage: [1, 2], extraData: {} },
        work: 'copyImage',
        onResume: 'restart',
        cancel: { policy: 'revert', reason: 'the copy stops and its partial destination is removed: the image stays Absent' },
      }),
      on: {
        CANCEL: { target: 'CancellingCopy' },
        WORK_PROGRESS: { actions: 'trackProgress' },
        WORK_DONE: { target: 'Ready', actions: 'becomeReady' },
        WORK_FAILED: { target: 'Broken', actions: 'becomeBroken' },
      },
    },
    CancellingCopy: {
      meta: meta({
        status: 'Locked',
        operation: { operationDescription: 'Copying', stageDescription: 'cancelling', stage: [1, 2], extraData: {} },
        work: 'abortCopy',
        onResume: 'restart',
        cancel: ALREADY_CANCELLING,
      }),
      on: {
        WORK_DONE: { target: 'Absent', actions: 'copyCancelled' },
        WORK_FAILED: { target: 'Broken', actions: 'becomeBroken' },
      },
    },
    Ready: {
      meta: meta({
        status: 'OK',
        operation: { operationDescription: 'Ready', stageDescription: '', ...settled, extraData: {} },
      }),
      on: {
        MERGE: { guard: 'hasBase', target: 'Merging', actions: 'beginTask' },
        DELETE: { target: 'Deleting', actions: 'beginTask' },
      },
    },
    Merging: {
      meta: meta({
        status: 'Locked',
        operation: { operationDescription: 'Merging', stageDescription: 'merging into base', stage: [1, 2], extraData: {} },
        work: 'mergeImage',
        onResume: 'restart',
        cancel: { policy: 'refuse', reason: 'data is being committed into the base image; stopping half-way would leave the base inconsistent' },
      }),
      on: {
        WORK_PROGRESS: { actions: 'trackProgress' },
        // The layer's data now lives in its base: the layer itself is gone.
        WORK_DONE: { target: 'Absent', actions: 'becomeMerged' },
        WORK_FAILED: { target: 'Broken', actions: 'becomeBroken' },
      },
    },
    Deleting: {
      meta: meta({
        status: 'Locked',
        operation: { operationDescription: 'Deleting', stageDescription: 'removing data', stage: [1, 2], extraData: {} },
        work: 'deleteImage',
        onResume: 'restart',
        cancel: { policy: 'refuse', reason: 'the data is being removed and cannot be brought back' },
      }),
      on: {
        WORK_DONE: { target: 'Absent', actions: 'becomeDeleted' },
        WORK_FAILED: { target: 'Broken', actions: 'becomeBroken' },
      },
    },
    Broken: {
      meta: meta({
        status: 'Illegal',
        operation: { operationDescription: 'Failed', stageDescription: '', ...settled, extraData: {} },
      }),
      on: {
        DELETE: { target: 'Deleting', actions: 'beginTask' },
      },
    },
  },
});
