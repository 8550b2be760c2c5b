import { isDeepStrictEqual } from 'node:util';
import { initialTransition, type AnyMachineSnapshot } from 'xstate';
import type { MachineDefinition } from '../machines/index.ts';
import type { RecordedEvent, StateValue } from '../src/domain/alert.ts';
import type { StoredAlert } from './alert-log.ts';
import { nextSnapshot } from './pure-transition.ts';
import type { StoredSnapshot } from './snapshot-store.ts';

/** Where recorded history and today's machine disagree. */
export type Divergence = {
  seq: number;
  event: RecordedEvent;
  recorded: StateValue;
  /** What today's machine computes, or undefined when it refuses the event outright. */
  recomputed: StateValue | undefined;
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

/**
 * Feeds one recorded alert's cause event through the machine and checks that it reaches the
 * recorded state. After a divergence the state stops advancing: what follows cannot be trusted.
 */
export function replayOne(definition: MachineDefinition, state: ReplayState, stored: StoredAlert): ReplayState {
  if (state.divergence) return state;
  const { alert, seq } = stored;
  const event = alert.event as Parameters<typeof nextSnapshot<typeof definition.machine>>[2];
  const accepted = state.snapshot.can(event);
  const next = accepted ? nextSnapshot(definition.machine, state.snapshot as never, event) : undefined;
  if (!next || !isDeepStrictEqual(next.value, alert.state)) {
    return {
      ...state,
      divergence: { seq, event: alert.event, recorded: alert.state, recomputed: next?.value as StateValue | undefined },
    };
  }
  return { snapshot: next, lastSeq: seq, revision: alert.revision };
}
