// The alert a transition produces: what the runtime appends, and what a benchmark that seeds a
// stream synthesizes, so both write exactly the same shape.
import type { AnyMachineSnapshot } from 'xstate';
import type { EntityContext } from '../machines/entity.ts';
import type { MachineDefinition } from '../machines/index.ts';
import type { Alert, RecordedEvent } from '../src/domain/alert.ts';
import { taskChange, viewOf } from './entity-snapshot.ts';

export type TransitionRecord = {
  definition: MachineDefinition;
  subject: string;
  before: AnyMachineSnapshot;
  next: AnyMachineSnapshot;
  /** The cause, already redacted. */
  event: RecordedEvent;
  revision: number;
  time: Date;
};

export function buildAlert({ definition, subject, before, next, event, revision, time }: TransitionRecord): Alert {
  const view = viewOf(next);
  return {
    alertName: subject,
    operationInfo: view.operationInfo,
    status: view.status,
    state: view.state,
    event,
    ...taskChange((before.context as EntityContext).task, next.context as EntityContext),
    machine: { id: definition.machine.id, version: definition.version },
    revision,
    time: time.toISOString(),
  };
}
