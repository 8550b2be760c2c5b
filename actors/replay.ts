// Event sourcing's fold: an entity's state is its recorded cause events fed through today's
// machine, each checked against what was recorded. The first record that does not fit — a state
// the machine does not reach, a record that is not a sealed alert, a revision missing, or (for
// records of today's machine version) anything a client saw that today's machine would show
// differently — is the divergence; the entity's state stops there and the agent will not change it.
import type { AnyMachineSnapshot } from 'xstate';
import type { MachineDefinition } from '../machines/index.ts';
import type { RecordedEvent, StateValue } from '../src/domain/alert.ts';
import { operationInfoOf, stateMeta, type EntityContext } from '../machines/entity.ts';
import type { Alert } from '../src/domain/alert.ts';
import { isQuarantined, type HistoryRecord } from './alert-log.ts';
import { taskChange } from './entity-snapshot.ts';
import { initialSnapshot, nextSnapshot } from './pure-transition.ts';
import { isPlacementEvent, placementAfter, UNKNOWN_STATUS, type Placement } from './placement.ts';
import { isSubObjectKind } from '../src/domain/subjects.ts';
import type { StoredSnapshot } from './snapshot-store.ts';

/** Where recorded history and today's machine (or the record itself) disagree. */
export type Divergence = {
  seq: number;
  /** In words, for logs and the EntityDiverged error. */
  reason: string;
  /** For a machine disagreement: the cause event, the recorded state and what is computed now. */
  event?: RecordedEvent;
  recorded?: StateValue;
  /** What today's machine computes, or undefined when it refuses the event outright. */
  recomputed?: StateValue;
};

export type ReplayState = {
  snapshot: AnyMachineSnapshot;
  lastSeq: number;
  revision: number;
  /** Which host owns the entity (undefined: a history from before the fleet, or none yet). */
  placement?: Placement;
  divergence?: Divergence;
};

export function initialReplayState(definition: MachineDefinition, id: string): ReplayState {
  return { snapshot: initialSnapshot(definition.machine, { id }), lastSeq: 0, revision: 0 };
}

/** The replay state a trusted snapshot stands for: replay continues after its sequence. */
export function restoreReplayState(definition: MachineDefinition, stored: StoredSnapshot): ReplayState {
  const snapshot = definition.machine.resolveState(stored.snapshot as Parameters<typeof definition.machine.resolveState>[0]);
  return { snapshot, lastSeq: stored.seq, revision: stored.revision, ...(stored.placement ? { placement: stored.placement } : {}) };
}

/**
 * Deep equality of JSON-shaped values, as strict as isDeepStrictEqual for them (a key holding
 * undefined differs from a missing key) at a fraction of its cost: replay compares twice per record.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i += 1) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  for (const key of keys) if (!Object.hasOwn(right, key) || !jsonEqual(left[key], right[key])) return false;
  return true;
}

const show = (value: StateValue | undefined): string => (value === undefined ? 'a refusal' : JSON.stringify(value));

/**
 * Feeds one recorded alert's cause event through the machine and checks that it reaches the
 * recorded state. After a divergence the state stops advancing: what follows cannot be trusted.
 */
export function replayOne(definition: MachineDefinition, state: ReplayState, record: HistoryRecord): ReplayState {
  if (state.divergence) return state;
  if (isQuarantined(record)) return divergedAt(state, record.seq, { reason: `the record at sequence ${record.seq} is quarantined: ${record.reason}` });
  const { alert } = record;
  // Revisions count an entity's alerts: a jump means a record of its history is gone.
  if (alert.revision !== state.revision + 1) {
    return divergedAt(state, record.seq, { reason: `revision ${alert.revision} follows revision ${state.revision}: a record of this history is missing or repeated` });
  }
  const placement = placementAfter(state.placement, alert.event, alert.hostId, isSubObjectKind(definition.kind));
  if (typeof placement === 'string') return divergedAt(state, record.seq, { reason: `the record at sequence ${record.seq} was ${placement}` });
  if (isPlacementEvent(alert.event)) return replayPlacement(state, record.seq, alert, placement);
  const event = alert.event as Parameters<typeof nextSnapshot<typeof definition.machine>>[2];
  const next = state.snapshot.can(event) ? nextSnapshot(definition.machine, state.snapshot as never, event) : undefined;
  if (!next || !jsonEqual(next.value, alert.state)) {
    const recomputed = next?.value as StateValue | undefined;
    return divergedAt(state, record.seq, {
      reason: `today's machine (${definition.machine.id} v${definition.version}) reaches ${show(recomputed)} where history recorded ${show(alert.state)}`,
      event: alert.event,
      recorded: alert.state,
      recomputed,
    });
  }
  const visible = visibleDifference(definition, state.snapshot, next, alert);
  if (visible) {
    return divergedAt(state, record.seq, {
      reason: `today's machine (${definition.machine.id} v${definition.version}) shows ${visible} where history recorded otherwise; a change to what clients see needs a new machine version`,
      event: alert.event,
      recorded: alert.state,
      recomputed: next.value as StateValue,
    });
  }
  return { snapshot: next, lastSeq: record.seq, revision: alert.revision, ...(placement ? { placement } : {}) };
}

/** `state` stopped at `seq`: a function, not a closure made for every record replayed. */
function divergedAt(state: ReplayState, seq: number, divergence: Omit<Divergence, 'seq'>): ReplayState {
  return { ...state, divergence: { seq, ...divergence } };
}

/** A fleet record moves the owner, never the machine: it must record the state the entity is in. */
function replayPlacement(state: ReplayState, seq: number, alert: Alert, placement: Placement | undefined): ReplayState {
  const diverge = (reason: string): ReplayState => ({ ...state, divergence: { seq, reason, event: alert.event, recorded: alert.state } });
  if (!jsonEqual(alert.state, state.snapshot.value)) {
    return diverge(`${alert.event.type} recorded state ${show(alert.state)} where the entity was in ${show(state.snapshot.value as StateValue)}`);
  }
  if ((alert.status === UNKNOWN_STATUS) !== (placement?.lost === true)) {
    return diverge(`${alert.event.type} recorded status ${JSON.stringify(alert.status)}, which does not match whether its host is lost`);
  }
  return { snapshot: state.snapshot, lastSeq: seq, revision: alert.revision, ...(placement ? { placement } : {}) };
}

/**
 * What a client saw — status, OperationInfo, the task and its status — compared with what
 * today's machine shows for the same transition. Only for records of today's machine version:
 * a new version may show things differently (that is what the version is for), but the same
 * version must not, or a change to progress scaling or to a lastError would go unnoticed.
 */
function visibleDifference(definition: MachineDefinition, before: AnyMachineSnapshot, next: AnyMachineSnapshot, alert: Alert): string | undefined {
  if (alert.machine.id !== definition.machine.id || alert.machine.version !== definition.version) return undefined;
  const meta = stateMeta(next);
  const context = next.context as EntityContext;
  if (meta.status !== alert.status) return `status ${JSON.stringify(meta.status)}`;
  const info = operationInfoOf(meta, context);
  if (!jsonEqual(info, alert.operationInfo)) return `operationInfo ${JSON.stringify(info)}`;
  const task = taskChange((before.context as EntityContext).task, context);
  if (task.task?.id !== alert.task?.id || task.taskStatus !== alert.taskStatus || task.cancelledTaskId !== alert.cancelledTaskId) {
    return `task ${JSON.stringify(task)}`;
  }
  return undefined;
}
