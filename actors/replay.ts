// Event sourcing's fold: an entity's state is its recorded cause events fed through today's
// machine, each checked against what was recorded. The first record that does not fit — a state
// the machine does not reach, a record that is not a sealed alert, a revision missing — is the
// divergence; the entity's state stops there and the agent will not change it.
import { isDeepStrictEqual } from 'node:util';
import { initialTransition, type AnyMachineSnapshot } from 'xstate';
import type { MachineDefinition } from '../machines/index.ts';
import type { RecordedEvent, StateValue } from '../src/domain/alert.ts';
import { isQuarantined, type HistoryRecord } from './alert-log.ts';
import { nextSnapshot } from './pure-transition.ts';
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
  divergence?: Divergence;
};

export function initialReplayState(definition: MachineDefinition, id: string): ReplayState {
  const [snapshot] = initialTransition(definition.machine, { id });
  return { snapshot, lastSeq: 0, revision: 0 };
}

/** The replay state a trusted snapshot stands for: replay continues after its sequence. */
export function restoreReplayState(definition: MachineDefinition, stored: StoredSnapshot): ReplayState {
  const snapshot = definition.machine.resolveState(stored.snapshot as Parameters<typeof definition.machine.resolveState>[0]);
  return { snapshot, lastSeq: stored.seq, revision: stored.revision };
}

const show = (value: StateValue | undefined): string => (value === undefined ? 'a refusal' : JSON.stringify(value));

/**
 * Feeds one recorded alert's cause event through the machine and checks that it reaches the
 * recorded state. After a divergence the state stops advancing: what follows cannot be trusted.
 */
export function replayOne(definition: MachineDefinition, state: ReplayState, record: HistoryRecord): ReplayState {
  if (state.divergence) return state;
  const diverge = (divergence: Omit<Divergence, 'seq'>): ReplayState => ({ ...state, divergence: { seq: record.seq, ...divergence } });
  if (isQuarantined(record)) return diverge({ reason: `the record at sequence ${record.seq} is quarantined: ${record.reason}` });
  const { alert } = record;
  // Revisions count an entity's alerts: a jump means a record of its history is gone.
  if (alert.revision !== state.revision + 1) {
    return diverge({ reason: `revision ${alert.revision} follows revision ${state.revision}: a record of this history is missing or repeated` });
  }
  const event = alert.event as Parameters<typeof nextSnapshot<typeof definition.machine>>[2];
  const next = state.snapshot.can(event) ? nextSnapshot(definition.machine, state.snapshot as never, event) : undefined;
  if (!next || !isDeepStrictEqual(next.value, alert.state)) {
    const recomputed = next?.value as StateValue | undefined;
    return diverge({
      reason: `today's machine (${definition.machine.id} v${definition.version}) reaches ${show(recomputed)} where history recorded ${show(alert.state)}`,
      event: alert.event,
      recorded: alert.state,
      recomputed,
    });
  }
  return { snapshot: next, lastSeq: record.seq, revision: alert.revision };
}
