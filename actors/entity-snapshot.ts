// Pure helpers over a machine snapshot: what it shows a client, what it accepts, and what a
// transition means for the task it belongs to.
import { getNextTransitions, type AnyMachineSnapshot } from 'xstate';
import { CANCELLED_CODE, operationInfoOf, stateMeta, type EntityContext, type StateMeta } from '../machines/entity.ts';
import type { StateValue } from '../src/domain/alert.ts';
import { OPERATION_DESCRIPTIONS, OperationInfo } from '../src/domain/operation-info.ts';
import type { TaskInfo, TaskStatus } from '../src/domain/task.ts';

export type EntityView = {
  status: string;
  state: StateValue;
  operationInfo: OperationInfo;
  task: TaskInfo | null;
  meta: StateMeta;
};

/**
 * Snapshots never change, and a transition asks for the view of the same snapshot several times
 * (the alert, the work to start, the caller waiting on a status): it is built, and its
 * OperationInfo validated, once per snapshot.
 */
const views = new WeakMap<AnyMachineSnapshot, EntityView>();

export function viewOf(snapshot: AnyMachineSnapshot): EntityView {
  let view = views.get(snapshot);
  if (view) return view;
  const meta = stateMeta(snapshot);
  const context = snapshot.context as EntityContext;
  view = {
    status: meta.status,
    state: snapshot.value as StateValue,
    // Validated here so a machine that produces a bad OperationInfo fails loudly, before persisting.
    operationInfo: checkedOperationInfo(operationInfoOf(meta, context)),
    task: context.task,
    meta,
  };
  views.set(snapshot, view);
  return view;
}

/** The state's meta: its view's when one was built (a transition builds it for its alert), else read afresh. */
export function metaOf(snapshot: AnyMachineSnapshot): StateMeta {
  return views.get(snapshot)?.meta ?? stateMeta(snapshot);
}

const DESCRIPTIONS: ReadonlySet<string> = new Set(OPERATION_DESCRIPTIONS);
const isWhole = (value: unknown): value is number => Number.isInteger(value);

/**
 * OperationInfo.parse, with the schema's checks written out for the common case: zod's parse was
 * the write path's largest cost of our own (every transition builds one). Anything the quick check
 * does not pass goes through the schema, which throws with its own message.
 */
function checkedOperationInfo(info: OperationInfo): OperationInfo {
  const { operationDescription, stageDescription, stage, percentage, lastError, extraData } = info;
  const valid =
    DESCRIPTIONS.has(operationDescription) &&
    typeof stageDescription === 'string' &&
    Array.isArray(stage) && stage.length === 2 && isWhole(stage[0]) && isWhole(stage[1]) && stage[0] >= 1 && stage[0] <= stage[1] &&
    isWhole(percentage) && percentage >= -1 && percentage <= 100 &&
    Array.isArray(lastError) && lastError.length === 2 && isWhole(lastError[0]) && typeof lastError[1] === 'string' &&
    typeof extraData === 'object' && extraData !== null && !Array.isArray(extraData);
  if (!valid) return OperationInfo.parse(info);
  // A copy, as the schema's parse returns: the machine's meta and context are not handed out.
  return { operationDescription, stageDescription, stage: [stage[0], stage[1]], percentage, lastError: [lastError[0], lastError[1]], extraData: { ...extraData } };
}

/** A stable key of the active state, to tell "still in the same state" from "moved". */
export function stateKey(snapshot: AnyMachineSnapshot): string {
  return JSON.stringify(snapshot.value);
}

/** The call events (upper-case, not driver WORK_*) the snapshot accepts now, for error messages. */
export function acceptedCalls(snapshot: AnyMachineSnapshot): string[] {
  const types = getNextTransitions(snapshot)
    .map((transition) => transition.eventType)
    .filter((type) => /^[A-Z_]+$/.test(type) && !type.startsWith('WORK_'));
  // getNextTransitions also lists ancestors' handlers that a state overrides; `can` knows better.
  return [...new Set(types)].filter((type) => snapshot.can({ type }));
}

export type TaskChange = { task?: TaskInfo; taskStatus?: TaskStatus; cancelledTaskId?: string };

/**
 * What a transition did to tasks, from the task before and the context after: a task still
 * current is running; one that left ended, failed when the entity now carries an error; one
 * replaced by another task was cancelled by it (a destroy during a create).
 */
export function taskChange(before: TaskInfo | null, after: EntityContext): TaskChange {
  if (after.task) {
    const cancelled = before && before.id !== after.task.id ? { cancelledTaskId: before.id } : {};
    return { task: after.task, taskStatus: 'running', ...cancelled };
  }
  if (before) return { task: before, taskStatus: endedStatus(after.lastError[0]) };
  return {};
}

/** How a task ended, from the lastError its operation left: a cancel has its own code. */
export function endedStatus(errorCode: number): TaskStatus {
  if (errorCode === CANCELLED_CODE) return 'cancelled';
  return errorCode !== 0 ? 'failed' : 'finished';
}
