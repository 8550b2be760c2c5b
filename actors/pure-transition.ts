// XState's pure `transition()` builds a throwaway actor — and with it the machine's initial
// snapshot — on every call. The write path and replay call it once per alert, so this reuses one
// inert scope per machine instead (a profile of the write benchmark showed the throwaway actor as
// its largest single cost). It is only correct because our machines run no actions but `assign`:
// their effects are the `work` their states declare, which the runtime starts, never XState. So an
// action that would need executing (a custom function, `raise`, `sendTo`, `spawnChild`, …) is not
// dropped in silence: the transition fails, naming it.
import { createActor, type AnyActorScope, type AnyStateMachine, type EventFromLogic, type SnapshotFrom } from 'xstate';

/** A machine asked for an effect the runtime does not run: a bug in the machine, caught loudly. */
export class MachineActionError extends Error {
  override name = 'MachineActionError';
}

const scopes = new WeakMap<AnyStateMachine, AnyActorScope>();

function inertScope(machine: AnyStateMachine): AnyActorScope {
  let scope = scopes.get(machine);
  if (!scope) {
    const self = createActor(machine);
    const ignore = () => undefined;
    const refuse = (action: { type: string }) => {
      throw new MachineActionError(
        `machine ${machine.id} ran the action ${JSON.stringify(action.type)}: machines may only assign; ` +
          'an effect belongs in a state\'s `work`, which the runtime persists before it starts',
      );
    };
    scope = { self, id: '', sessionId: '', logger: ignore, defer: ignore, emit: ignore, system: self.system, stopChild: ignore, actionExecutor: refuse };
    scopes.set(machine, scope);
  }
  return scope;
}

/** The snapshot `event` leads to from `snapshot`; the same as XState's `transition(...)[0]`. */
export function nextSnapshot<Machine extends AnyStateMachine>(
  machine: Machine,
  snapshot: SnapshotFrom<Machine>,
  event: EventFromLogic<Machine>,
): SnapshotFrom<Machine> {
  return machine.transition(snapshot, event, inertScope(machine)) as SnapshotFrom<Machine>;
}

/**
 * The machine's initial snapshot for `input`; the same as XState's `initialTransition(...)[0]`
 * without its throwaway actor (which computes an initial snapshot of its own): replay builds one
 * per entity, and at 100,000 entities that actor was seconds of a restart.
 */
export function initialSnapshot<Machine extends AnyStateMachine>(machine: Machine, input: unknown): SnapshotFrom<Machine> {
  return machine.getInitialSnapshot(inertScope(machine), input) as SnapshotFrom<Machine>;
}
