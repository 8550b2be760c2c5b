// XState's pure `transition()` builds a throwaway actor — and with it the machine's initial
// snapshot — on every call. The write path and replay call it once per alert, so this reuses one
// inert scope per machine instead (a profile of the write benchmark showed the throwaway actor as
// its largest single cost). It is only correct because our machines run no actions but `assign`:
// their effects are the `work` their states declare, which the runtime starts, never XState.
import { createActor, type AnyActorScope, type AnyStateMachine, type EventFromLogic, type SnapshotFrom } from 'xstate';

const scopes = new WeakMap<AnyStateMachine, AnyActorScope>();

function inertScope(machine: AnyStateMachine): AnyActorScope {
  let scope = scopes.get(machine);
  if (!scope) {
    const self = createActor(machine);
    const ignore = () => undefined;
    scope = { self, id: '', sessionId: '', logger: ignore, defer: ignore, emit: ignore, system: self.system, stopChild: ignore, actionExecutor: ignore };
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
