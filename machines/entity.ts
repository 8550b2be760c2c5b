// What every entity machine shares: the context fields behind OperationInfo, the events drivers
// send, and the state meta that declares a state's OperationInfo and its work. Pure: no I/O,
// no clock, no randomness — a machine is a deterministic function of its recorded events.
import type { OperationDescription, OperationInfo } from '../src/domain/operation-info.ts';
import { NO_ERROR } from '../src/domain/operation-info.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { LastErrorCodes } from '../src/domain/last-errors.ts';

export type ErrorTuple = [code: number, message: string];

/** The context fields every entity machine has; OperationInfo's dynamic parts live here. */
export type EntityContext = {
  /** The operation in progress, or null when the entity is settled. */
  task: TaskInfo | null;
  percentage: number;
  lastError: ErrorTuple;
  /** The entity's own extraData (an image's imageState), merged over its state's static fields. */
  extraData?: Record<string, unknown>;
  /** Overrides the state's static stage (jobs count their steps). */
  stage?: [number, number];
};

/** Events a driver sends back while it does a state's work. */
export type DriverEvent =
  | { type: 'WORK_PROGRESS'; percentage: number }
  | { type: 'WORK_DONE'; output?: Record<string, unknown> }
  | { type: 'WORK_FAILED'; error: ErrorTuple };

/** What a state declares about itself, in its XState `meta`. */
export type StateMeta = {
  /** The entity's status in the subsystem's own words (VDSM's "Powering up", "Up", ...). */
  status: string;
  operation: {
    operationDescription: OperationDescription;
    stageDescription: string;
    /** [n, total]; n < total while an operation runs, [1, 1] when settled. */
    stage: [number, number];
    extraData: Record<string, unknown>;
  };
  /**
   * The driver work that runs while the entity is in this state. A state without work is settled:
   * nothing happens until the next call or fault.
   */
  work?: string;
  /**
   * What an agent restarted in this state does with its work: `continue` the driver's run
   * (the driver can find it again), `restart` the stage from its beginning, or `fail` the
   * operation with a clear lastError.
   */
  onResume?: 'continue' | 'restart' | 'fail';
  /**
   * What a cancel of the running operation means here: `revert` (the machine takes CANCEL into a
   * state whose work undoes the operation), `rollForward` (it finishes as if not cancelled: it is
   * nearly done or cannot be undone) or `refuse` (the caller is told `reason`). Settled states,
   * where no operation runs, declare none.
   */
  cancel?: CancelPolicy;
  /**
   * This state's work runs on the host in the context's `dstHost` (a migration's destination): its
   * owner hands the entity over on entering it, and the destination's agent does the work.
   */
  handOver?: true;
};

export const CANCEL_POLICIES = ['revert', 'rollForward', 'refuse'] as const;
export type CancelPolicy = { policy: (typeof CANCEL_POLICIES)[number]; reason: string };

/** The event a cancel request becomes; only states whose policy is `revert` take it. */
export type CancelEvent = { type: 'CANCEL' };

/** lastError code of an operation cancelled by request: its task ends `cancelled`. */
export const CANCELLED_CODE = LastErrorCodes.Cancelled;

/** lastError of a cancelled operation; `outcome` says where the revert left the entity. */
export function cancelledError(outcome: string): ErrorTuple {
  return [CANCELLED_CODE, `cancelled by request; ${outcome}`];
}

/** An aborting state's own policy: the cancel is already under way, a second one changes nothing. */
export const ALREADY_CANCELLING: CancelPolicy = { policy: 'rollForward', reason: 'the operation is already being cancelled' };

/** Merged meta of the active state nodes, child over parent (getMeta lists parents first). */
export function stateMeta(snapshot: { getMeta(): Record<string, unknown> }): StateMeta {
  const merged = Object.assign({}, ...Object.values(snapshot.getMeta())) as Partial<StateMeta>;
  if (!merged.status || !merged.operation) throw new Error('state has no status/operation meta');
  return merged as StateMeta;
}

export function operationInfoOf(meta: StateMeta, context: EntityContext): OperationInfo {
  return {
    operationDescription: meta.operation.operationDescription,
    stageDescription: meta.operation.stageDescription,
    // A job's stage is [current step, steps]: it lives in its context, not in a state's meta.
    stage: context.stage ?? meta.operation.stage,
    percentage: context.percentage,
    lastError: context.lastError,
    extraData: context.extraData ? { ...meta.operation.extraData, ...context.extraData } : meta.operation.extraData,
  };
}

// Context updates shared by the machines' assign actions.

/** A call was accepted: it becomes the running task and the last error is forgotten. */
export function beginTask(task: TaskInfo): Partial<EntityContext> {
  return { task, lastError: NO_ERROR, percentage: 0 };
}

/** The operation is over, successfully unless `error` is given. */
export function endTask(error: ErrorTuple = NO_ERROR): Partial<EntityContext> {
  return { task: null, lastError: error, percentage: -1 };
}

/** Maps a work's own 0..100 onto the operation's overall range [from, to]. */
export function scaleProgress(percentage: number, from: number, to: number): number {
  const clamped = Math.min(100, Math.max(0, percentage));
  return Math.round(from + ((to - from) * clamped) / 100);
}
