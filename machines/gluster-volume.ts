// A gluster volume (`vdsm.Gluster.Volume.<name>`). Gluster runs its operations on its own once
// asked; the driver polls gluster's status and turns what it sees into WORK_* events — the
// seed's "for gluster this is the only way we can check that the operation finished".
import { assign, setup } from 'xstate';
import type { TaskInfo } from '../src/domain/task.ts';
import type { CancelEvent, DriverEvent, EntityContext, StateMeta } from './entity.ts';
import { ALREADY_CANCELLING, beginTask, cancelledError, endTask, scaleProgress } from './entity.ts';
import { LastErrorCodes } from '../src/domain/last-errors.ts';

/** 2: Absent shows operationDescription "Absent" (version 1 showed "Deleting", stage "deleted"). */
export const GLUSTER_VOLUME_MACHINE_VERSION = 2;

export type RebalanceOutcome = 'completed' | 'failed' | 'stopped';

export type GlusterVolumeContext = EntityContext & {
  volumeName: string;
  bricks: string[];
  extraData: { rebalance?: RebalanceOutcome };
};

export type GlusterVolumeEvent =
  | { type: 'CREATE'; task: TaskInfo; bricks: string[] }
  | { type: 'START'; task: TaskInfo }
  | { type: 'STOP'; task: TaskInfo }
  | { type: 'REBALANCE_START'; task: TaskInfo }
  | { type: 'REBALANCE_STOP'; task: TaskInfo }
  | DriverEvent
  | CancelEvent;

const meta = (value: StateMeta): StateMeta => value;
const settled = { stage: [1, 1] as [number, number] };

export const glusterVolumeMachine = setup({
  types: {
    context: {} as GlusterVolumeContext,
    events: {} as GlusterVolumeEvent,
    input: {} as { id: string },
  },
  actions: {
    beginTask: assign(({ event }) => ('task' in event ? beginTask(event.task) : {})),
    rememberBricks: assign(({ event }) => (event.type === 'CREATE' ? { bricks: event.bricks, extraData: {} } : {})),
    endTask: assign((): Partial<GlusterVolumeContext> => endTask()),
    failTask: assign(({ event }) => endTask(event.type === 'WORK_FAILED' ? event.error : [LastErrorCodes.Failed, 'unknown failure'])),
    trackProgress: assign(({ event }) => (event.type === 'WORK_PROGRESS' ? { percentage: scaleProgress(event.percentage, 0, 100) } : {})),
    rebalanceCancelled: assign(() => ({
      ...endTask(cancelledError('the rebalance was stopped; data already moved stays where it is')),
      extraData: { rebalance: 'stopped' as const },
    })),
    rebalanceEnded: assign(({ event }, params: { outcome: RebalanceOutcome }) => ({
      ...endTask(event.type === 'WORK_FAILED' ? event.error : [0, '']),
      extraData: { rebalance: params.outcome },
    })),
  },
}).createMachine({
  id: 'glusterVolume',
  context: ({ input }) => ({ volumeName: input.id, bricks: [], task: null, percentage: -1, lastError: [0, ''], extraData: {} }),
  initial: 'Absent',
  states: {
    Absent: {
      meta: meta({ status: 'Absent', operation: { operationDescription: 'Absent', stageDescription: '', ...settled, extraData: {} } }),
      on: { CREATE: { target: 'Creating', actions: ['beginTask', 'rememberBricks'] } },
    },
    Creating: {
      meta: meta({
        status: 'Creating',
        operation: { operationDescription: 'Creating', stageDescription: 'creating volume', stage: [1, 2], extraData: {} },
        work: 'createVolume',
        onResume: 'continue',
        cancel: { policy: 'rollForward', reason: 'gluster creates the volume on its own once asked; delete it afterwards' },
      }),
      on: {
        WORK_DONE: { target: 'Stopped', actions: 'endTask' },
        WORK_FAILED: { target: 'Absent', actions: 'failTask' },
      },
    },
    Stopped: {
      meta: meta({ status: 'Stopped', operation: { operationDescription: 'Stopped', stageDescription: '', ...settled, extraData: {} } }),
      on: { START: { target: 'Starting', actions: 'beginTask' } },
    },
    Starting: {
      meta: meta({
        status: 'Starting',
        operation: { operationDescription: 'Starting', stageDescription: 'starting bricks', stage: [1, 2], extraData: {} },
        work: 'startVolume',
        onResume: 'continue',
        cancel: { policy: 'rollForward', reason: 'gluster starts the bricks on its own once asked; stop the volume afterwards' },
      }),
      on: {
        WORK_DONE: { target: 'Started', actions: 'endTask' },
        WORK_FAILED: { target: 'Stopped', actions: 'failTask' },
      },
    },
    Started: {
      meta: meta({ status: 'Started', operation: { operationDescription: 'Running', stageDescription: '', ...settled, extraData: {} } }),
      on: {
        STOP: { target: 'Stopping', actions: 'beginTask' },
        REBALANCE_START: { target: 'Rebalancing', actions: 'beginTask' },
      },
    },
    Rebalancing: {
      meta: meta({
        status: 'Started',
        operation: { operationDescription: 'Rebalancing', stageDescription: 'rebalancing data', stage: [1, 2], extraData: {} },
        work: 'rebalance',
        // Gluster goes on rebalancing without us: after a restart, only the polling resumes.
        onResume: 'continue',
        cancel: { policy: 'revert', reason: 'the rebalance is stopped (gluster volume rebalance stop); data already moved stays' },
      }),
      on: {
        CANCEL: { target: 'CancellingRebalance' },
        WORK_PROGRESS: { actions: 'trackProgress' },
        WORK_DONE: { target: 'Started', actions: { type: 'rebalanceEnded', params: { outcome: 'completed' } } },
        WORK_FAILED: { target: 'Started', actions: { type: 'rebalanceEnded', params: { outcome: 'failed' } } },
        REBALANCE_STOP: { target: 'StoppingRebalance', actions: 'beginTask' },
      },
    },
    StoppingRebalance: {
      meta: meta({
        status: 'Started',
        operation: { operationDescription: 'Rebalancing', stageDescription: 'stopping', stage: [1, 2], extraData: {} },
        work: 'stopRebalance',
        onResume: 'restart',
        cancel: { policy: 'rollForward', reason: 'stopping a rebalance is itself the undo' },
      }),
      on: {
        WORK_DONE: { target: 'Started', actions: { type: 'rebalanceEnded', params: { outcome: 'stopped' } } },
        WORK_FAILED: { target: 'Started', actions: { type: 'rebalanceEnded', params: { outcome: 'failed' } } },
      },
    },
    CancellingRebalance: {
      meta: meta({
        status: 'Started',
        operation: { operationDescription: 'Rebalancing', stageDescription: 'cancelling', stage: [1, 2], extraData: {} },
        work: 'stopRebalance',
        onResume: 'restart',
        cancel: ALREADY_CANCELLING,
      }),
      on: {
        WORK_DONE: { target: 'Started', actions: 'rebalanceCancelled' },
        WORK_FAILED: { target: 'Started', actions: { type: 'rebalanceEnded', params: { outcome: 'failed' } } },
      },
    },
    Stopping: {
      meta: meta({
        status: 'Stopping',
        operation: { operationDescription: 'Stopping', stageDescription: 'stopping bricks', stage: [1, 2], extraData: {} },
        work: 'stopVolume',
        onResume: 'continue',
        cancel: { policy: 'rollForward', reason: 'gluster stops the bricks on its own once asked; start the volume afterwards' },
      }),
      on: {
        WORK_DONE: { target: 'Stopped', actions: 'endTask' },
        WORK_FAILED: { target: 'Started', actions: 'failTask' },
      },
    },
  },
});
