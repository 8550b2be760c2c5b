// The life of a VM as VDSM reports it. Each state's meta is the OperationInfo a client sees
// there; `work` names what the driver does while the VM is in that state, and the driver's
// WORK_* events move it on. Read it as the spec of `vdsm.VM.<id>`.
import { assign, setup } from 'xstate';
import type { TaskInfo } from '../src/domain/task.ts';
import type { CancelEvent, DriverEvent, EntityContext, ErrorTuple, StateMeta } from './entity.ts';
import { ALREADY_CANCELLING, beginTask, cancelledError, endTask, scaleProgress } from './entity.ts';
import { LastErrorCodes } from '../src/domain/last-errors.ts';

export const VM_MACHINE_VERSION = 1;

export type VmContext = EntityContext & {
  vmId: string;
  /** The create call's parameters (already redacted). */
  params: Record<string, unknown>;
  /** Where the running migration goes; null otherwise. */
  dstHost: string | null;
};

export type VmCallEvent =
  | { type: 'CREATE'; task: TaskInfo; params: Record<string, unknown> }
  | { type: 'PAUSE'; task: TaskInfo }
  | { type: 'CONT'; task: TaskInfo }
  | { type: 'MIGRATE'; task: TaskInfo; dstHost: string }
  | { type: 'DESTROY'; task: TaskInfo };

/**
 * What the hypervisor did on its own. `IO_ERROR`: the guest hit a disk error and was paused (the
 * seed's "paused on EIO"). `EXITED`: the hypervisor process ended without being asked; `error`
 * says how. `STOPPED` / `RESUMED`: the guest was paused or let run by someone other than this
 * agent (noticed from the hypervisor's own events, or on re-attaching after an agent restart).
 */
export type VmFaultEvent =
  | { type: 'IO_ERROR'; error: ErrorTuple }
  | { type: 'EXITED'; error: ErrorTuple }
  | { type: 'STOPPED'; error: ErrorTuple }
  | { type: 'RESUMED' };

export type VmEvent = VmCallEvent | VmFaultEvent | DriverEvent | CancelEvent;

const meta = (value: StateMeta): StateMeta => value;
const settled = { stage: [1, 1] as [number, number] };
const MIGRATE_CANCEL = { policy: 'revert', reason: 'migrateCancel: the VM keeps running on this host' } as const;

export const vmMachine = setup({
  types: {
    context: {} as VmContext,
    events: {} as VmEvent,
    input: {} as { id: string },
  },
  guards: {
    // Set by the runtime on the copy's end when the destination is a live agent of the fleet.
    handedOver: ({ event }) => event.type === 'WORK_DONE' && typeof event.output?.['handOverTo'] === 'string',
  },
  actions: {
    beginTask: assign(({ event }) => ('task' in event ? beginTask(event.task) : {})),
    beginCreate: assign(({ event }) => (event.type === 'CREATE' ? { params: event.params, dstHost: null } : {})),
    beginMigration: assign(({ event }) => (event.type === 'MIGRATE' ? { dstHost: event.dstHost } : {})),
    endTask: assign(() => ({ ...endTask(), dstHost: null })),
    failTask: assign(({ event }) => ({
      ...endTask('error' in event ? event.error : [LastErrorCodes.Failed, 'unknown failure']),
      dstHost: null,
    })),
    cancelled: assign((_, params: { outcome: string }) => ({ ...endTask(cancelledError(params.outcome)), dstHost: null })),
    trackProgress: assign(({ event }, range: { from: number; to: number }) =>
      event.type === 'WORK_PROGRESS' ? { percentage: scaleProgress(event.percentage, range.from, range.to) } : {},
    ),
    startStage: assign((_, params: { percentage: number }) => ({ percentage: params.percentage })),
  },
}).createMachine({
  id: 'vm',
  context: ({ input }) => ({
    vmId: input.id,
    params: {},
    dstHost: null,
    task: null,
    percentage: -1,
    lastError: [0, ''],
  }),
  initial: 'Down',
  // A destroy is accepted in every state but Down; it ends (cancels) whatever was running.
  // A hypervisor that exits on its own ends whatever was running too, with the reason as lastError.
  on: {
    DESTROY: { target: '.PoweringDown', actions: 'beginTask' },
    EXITED: { target: '.Down', actions: 'failTask' },
  },
  states: {
    Down: {
      meta: meta({
        status: 'Down',
        operation: { operationDescription: 'Stopped', stageDescription: '', ...settled, extraData: { state: 'down' } },
      }),
      on: {
        CREATE: { target: 'WaitForLaunch', actions: ['beginTask', 'beginCreate'] },
        // Overrides the machine-wide DESTROY: a VM that is down has nothing to destroy.
        DESTROY: {},
        EXITED: {},
      },
    },
    WaitForLaunch: {
      meta: meta({
        status: 'WaitForLaunch',
        operation: {
          operationDescription: 'Creating',
          stageDescription: 'configuring',
          stage: [1, 3],
          extraData: { state: 'preparing for launch' },
        },
        work: 'prepare',
        onResume: 'restart',
        cancel: { policy: 'revert', reason: 'nothing runs yet: the configuration is released and the VM stays Down' },
      }),
      on: {
        CANCEL: { target: 'CancellingCreate' },
        WORK_PROGRESS: { actions: { type: 'trackProgress', params: { from: 0, to: 50 } } },
        WORK_DONE: { target: 'PoweringUp', actions: { type: 'startStage', params: { percentage: 50 } } },
        WORK_FAILED: { target: 'Down', actions: 'failTask' },
      },
    },
    CancellingCreate: {
      meta: meta({
        status: 'WaitForLaunch',
        operation: {
          operationDescription: 'Creating',
          stageDescription: 'cancelling',
          stage: [1, 2],
          extraData: { state: 'preparing for launch' },
        },
        work: 'abortCreate',
        onResume: 'restart',
        cancel: ALREADY_CANCELLING,
      }),
      on: {
        WORK_DONE: { target: 'Down', actions: { type: 'cancelled', params: { outcome: 'the create was reverted and the VM is Down' } } },
        WORK_FAILED: { target: 'Down', actions: 'failTask' },
      },
    },
    PoweringUp: {
      meta: meta({
        status: 'Powering up',
        operation: {
          operationDescription: 'Creating',
          stageDescription: 'powering up',
          stage: [2, 3],
          extraData: { state: 'powering up' },
        },
        work: 'powerUp',
        onResume: 'continue',
        cancel: { policy: 'rollForward', reason: 'the guest is booting and will be Up shortly; destroy it to stop it' },
      }),
      on: {
        WORK_PROGRESS: { actions: { type: 'trackProgress', params: { from: 50, to: 100 } } },
        WORK_DONE: { target: 'Up', actions: 'endTask' },
        WORK_FAILED: { target: 'Down', actions: 'failTask' },
        IO_ERROR: { target: 'Paused', actions: 'failTask' },
      },
    },
    Up: {
      meta: meta({
        status: 'Up',
        operation: { operationDescription: 'Running', stageDescription: '', ...settled, extraData: { state: 'up' } },
        // The driver watches the running hypervisor (and finds it again after an agent restart);
        // what it notices arrives as fault events.
        work: 'watchRunning',
        onResume: 'continue',
      }),
      on: {
        PAUSE: { target: 'Pausing', actions: 'beginTask' },
        MIGRATE: { target: 'MigrationSource', actions: ['beginTask', 'beginMigration'] },
        IO_ERROR: { target: 'Paused', actions: 'failTask' },
        STOPPED: { target: 'Paused', actions: 'failTask' },
      },
    },
    Pausing: {
      meta: meta({
        status: 'Up',
        operation: { operationDescription: 'Pausing', stageDescription: 'pausing', stage: [1, 2], extraData: { state: 'up' } },
        work: 'pause',
        onResume: 'restart',
        cancel: { policy: 'rollForward', reason: 'a pause takes a moment and cannot be stopped half-way' },
      }),
      on: {
        WORK_PROGRESS: { actions: { type: 'trackProgress', params: { from: 0, to: 100 } } },
        WORK_DONE: { target: 'Paused', actions: 'endTask' },
        WORK_FAILED: { target: 'Up', actions: 'failTask' },
        IO_ERROR: { target: 'Paused', actions: 'failTask' },
      },
    },
    Paused: {
      meta: meta({
        status: 'Paused',
        operation: {
          operationDescription: 'Paused',
          stageDescription: 'Paused',
          ...settled,
          extraData: { state: 'paused' },
        },
        work: 'watchPaused',
        onResume: 'continue',
      }),
      on: {
        CONT: { target: 'Resuming', actions: 'beginTask' },
        RESUMED: { target: 'Up', actions: 'endTask' },
      },
    },
    Resuming: {
      meta: meta({
        status: 'Paused',
        operation: {
          operationDescription: 'Resuming',
          stageDescription: 'resuming',
          stage: [1, 2],
          extraData: { state: 'paused' },
        },
        work: 'resume',
        onResume: 'restart',
        cancel: { policy: 'rollForward', reason: 'a resume takes a moment and cannot be stopped half-way' },
      }),
      on: {
        WORK_PROGRESS: { actions: { type: 'trackProgress', params: { from: 0, to: 100 } } },
        WORK_DONE: { target: 'Up', actions: 'endTask' },
        WORK_FAILED: { target: 'Paused', actions: 'failTask' },
        IO_ERROR: { target: 'Paused', actions: 'failTask' },
      },
    },
    MigrationSource: {
      initial: 'configuring',
      on: {
        // The source keeps running when a migration fails; an I/O error pauses it there.
        WORK_FAILED: { target: 'Up', actions: 'failTask' },
        IO_ERROR: { target: 'Paused', actions: 'failTask' },
      },
      states: {
        configuring: {
          meta: meta({
            status: 'Migration Source',
            operation: {
              operationDescription: 'Migration',
              stageDescription: 'configuring',
              stage: [1, 3],
              extraData: { state: 'migrating' },
            },
            work: 'prepareMigration',
            onResume: 'restart',
            cancel: MIGRATE_CANCEL,
          }),
          entry: { type: 'startStage', params: { percentage: -1 } },
          on: {
            CANCEL: { target: 'cancelling' },
            WORK_DONE: { target: 'copyingMemory', actions: { type: 'startStage', params: { percentage: 0 } } },
          },
        },
        copyingMemory: {
          meta: meta({
            status: 'Migration Source',
            operation: {
              operationDescription: 'Migration',
              stageDescription: 'copying memory',
              stage: [2, 3],
              extraData: { state: 'migrating' },
            },
            work: 'copyMemory',
            // The destination's half-received memory cannot be trusted after the agent was gone:
            // the migration fails and the VM keeps running here.
            onResume: 'fail',
            cancel: MIGRATE_CANCEL,
          }),
          on: {
            CANCEL: { target: 'cancelling' },
            WORK_PROGRESS: { actions: { type: 'trackProgress', params: { from: 0, to: 100 } } },
            WORK_DONE: [
              // The destination is an agent of the fleet: the VM goes on there, with this history.
              { guard: 'handedOver', target: '#vm.MigrationDestination', actions: { type: 'startStage', params: { percentage: -1 } } },
              // A destination with no agent of ours: what runs there is not tracked here.
              { target: '#vm.Down', actions: 'endTask' },
            ],
          },
        },
        // VDSM's migrateCancel: the destination is told to drop what it received; the VM never
        // stopped here, so it is Up again once the destination let go.
        cancelling: {
          meta: meta({
            status: 'Migration Source',
            operation: {
              operationDescription: 'Migration',
              stageDescription: 'cancelling',
              stage: [1, 2],
              extraData: { state: 'migrating' },
            },
            work: 'cancelMigration',
            onResume: 'restart',
            cancel: ALREADY_CANCELLING,
          }),
          on: {
            WORK_DONE: { target: '#vm.Up', actions: { type: 'cancelled', params: { outcome: 'the migration was cancelled and the VM keeps running on this host' } } },
          },
        },
      },
    },
    // The guest runs at the destination now; the source handed the entity over, and the
    // destination's agent confirms its QEMU took the guest up before calling it Up.
    MigrationDestination: {
      meta: meta({
        status: 'Migration Destination',
        operation: {
          operationDescription: 'Migration',
          stageDescription: 'taking over on the destination',
          stage: [3, 3],
          extraData: { state: 'migrating' },
        },
        work: 'finishMigration',
        onResume: 'continue',
        handOver: true,
        cancel: { policy: 'refuse', reason: 'the memory has been copied and the VM runs on the destination; migrate it back instead' },
      }),
      on: {
        WORK_DONE: { target: 'Up', actions: 'endTask' },
        WORK_FAILED: { target: 'Down', actions: 'failTask' },
        EXITED: { target: 'Down', actions: 'failTask' },
        IO_ERROR: { target: 'Paused', actions: 'failTask' },
      },
    },
    PoweringDown: {
      meta: meta({
        status: 'Powering down',
        operation: {
          operationDescription: 'Stopping',
          stageDescription: 'powering down',
          stage: [1, 2],
          extraData: { state: 'powering down' },
        },
        work: 'powerDown',
        onResume: 'restart',
        cancel: { policy: 'refuse', reason: 'a destroy cannot be undone: the VM is already being powered off' },
      }),
      on: {
        WORK_PROGRESS: { actions: { type: 'trackProgress', params: { from: 0, to: 100 } } },
        WORK_DONE: { target: 'Down', actions: 'endTask' },
        // A VM that cannot be shut down cleanly is destroyed anyway; the error says so.
        WORK_FAILED: { target: 'Down', actions: 'failTask' },
        // Already being destroyed: a second destroy is refused, not queued.
        DESTROY: {},
      },
    },
  },
});
