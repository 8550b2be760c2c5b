// A connection to a storage server (`vdsm.Storage.Connection.<id>`): connect, hold, disconnect.
// While Connected the driver holds the connection (work `holdConnection`); if it drops, the
// failure arrives as WORK_FAILED and the connection is Disconnected with lastError saying why.
import { assign, setup } from 'xstate';
import type { TaskInfo } from '../src/domain/task.ts';
import type { CancelEvent, DriverEvent, EntityContext, StateMeta } from './entity.ts';
import { ALREADY_CANCELLING, beginTask, cancelledError, endTask } from './entity.ts';
import { LastErrorCodes } from '../src/domain/last-errors.ts';

export const STORAGE_CONNECTION_MACHINE_VERSION = 1;

export type StorageConnectionContext = EntityContext & {
  connectionId: string;
  /** What connect was given (type, server, port, path, ...), redacted. */
  params: Record<string, unknown>;
};

export type StorageConnectionEvent =
  | { type: 'CONNECT'; task: TaskInfo; params: Record<string, unknown> }
  | { type: 'DISCONNECT'; task: TaskInfo }
  | DriverEvent
  | CancelEvent;

const meta = (value: StateMeta): StateMeta => value;
const settled = { stage: [1, 1] as [number, number] };

export const storageConnectionMachine = setup({
  types: {
    context: {} as StorageConnectionContext,
    events: {} as StorageConnectionEvent,
    input: {} as { id: string },
  },
  actions: {
    beginTask: assign(({ event }) => ('task' in event ? beginTask(event.task) : {})),
    rememberParams: assign(({ event }) => (event.type === 'CONNECT' ? { params: event.params } : {})),
    endTask: assign((): Partial<StorageConnectionContext> => endTask()),
    cancelled: assign((): Partial<StorageConnectionContext> => endTask(cancelledError('the connection attempt was abandoned; the connection is Disconnected'))),
    failTask: assign(({ event }) => endTask(event.type === 'WORK_FAILED' ? event.error : [LastErrorCodes.Failed, 'unknown failure'])),
  },
}).createMachine({
  id: 'storageConnection',
  context: ({ input }) => ({ connectionId: input.id, params: {}, task: null, percentage: -1, lastError: [0, ''] }),
  initial: 'Disconnected',
  states: {
    Disconnected: {
      meta: meta({
        status: 'Disconnected',
        operation: { operationDescription: 'Disconnected', stageDescription: '', ...settled, extraData: { connected: false } },
      }),
      on: { CONNECT: { target: 'Connecting', actions: ['beginTask', 'rememberParams'] } },
    },
    Connecting: {
      meta: meta({
        status: 'Connecting',
        operation: { operationDescription: 'Connecting', stageDescription: 'connecting', stage: [1, 2], extraData: { connected: false } },
        work: 'connect',
        onResume: 'restart',
        cancel: { policy: 'revert', reason: 'the connection attempt is abandoned and anything opened is closed' },
      }),
      on: {
        CANCEL: { target: 'CancellingConnect' },
        WORK_DONE: { target: 'Connected', actions: 'endTask' },
        WORK_FAILED: { target: 'Disconnected', actions: 'failTask' },
      },
    },
    CancellingConnect: {
      meta: meta({
        status: 'Connecting',
        operation: { operationDescription: 'Connecting', stageDescription: 'cancelling', stage: [1, 2], extraData: { connected: false } },
        work: 'abortConnect',
        onResume: 'restart',
        cancel: ALREADY_CANCELLING,
      }),
      on: {
        WORK_DONE: { target: 'Disconnected', actions: 'cancelled' },
        WORK_FAILED: { target: 'Disconnected', actions: 'failTask' },
      },
    },
    Connected: {
      meta: meta({
        status: 'Connected',
        operation: { operationDescription: 'Connected', stageDescription: '', ...settled, extraData: { connected: true } },
        // Not an operation: the driver keeps the connection open and says if it drops.
        work: 'holdConnection',
        onResume: 'restart',
      }),
      on: {
        DISCONNECT: { target: 'Disconnecting', actions: 'beginTask' },
        WORK_FAILED: { target: 'Disconnected', actions: 'failTask' },
      },
    },
    Disconnecting: {
      meta: meta({
        status: 'Disconnecting',
        operation: { operationDescription: 'Disconnecting', stageDescription: 'disconnecting', stage: [1, 2], extraData: { connected: true } },
        work: 'disconnect',
        onResume: 'restart',
        cancel: { policy: 'rollForward', reason: 'closing a connection is quick and cannot be undone half-way' },
      }),
      on: {
        WORK_DONE: { target: 'Disconnected', actions: 'endTask' },
        WORK_FAILED: { target: 'Disconnected', actions: 'failTask' },
      },
    },
  },
});
