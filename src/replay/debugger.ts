// Steps through an entity's history with today's machines: each recorded cause event is fed
// through the machine and the state it reaches is compared with the one recorded.
import { MACHINES, type MachineDefinition } from '../../machines/index.ts';
import { initialReplayState, replayOne, type Divergence } from '../../actors/replay.ts';
import type { RecordedEvent, StateValue } from '../domain/alert.ts';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import type { OperationInfo } from '../domain/operation-info.ts';
import { parseAlertSubject } from '../domain/subjects.ts';
import { historyRecords, type HistoryFile } from './history.ts';

export type Step = {
  seq: number;
  revision: number;
  time: string;
  event: RecordedEvent;
  from: StateValue | null;
  to: StateValue;
  status: string;
  operationInfo: OperationInfo;
  taskId?: string;
  taskStatus?: string;
  /** The host that owned the entity after this step (histories from before the fleet name none). */
  hostId?: string;
};

export type Verification =
  | { ok: true; verified: number; machine: { id: string; version: number } }
  | { ok: false; verified: number; machine: { id: string; version: number }; divergence: Divergence };

export function definitionFor(alertName: string): MachineDefinition {
  const ref = parseAlertSubject(alertName);
  const definition = ref && (MACHINES as Partial<Record<string, MachineDefinition>>)[ref.kind];
  if (!definition) throw new OpstreamError(ErrorCodes.NoSuchEntity, `no machine for ${alertName}`);
  return definition;
}

/** The history as steps, up to and including sequence `to` when given (time travel). */
export function steps(history: HistoryFile, to?: number): Step[] {
  const result: Step[] = [];
  let from: StateValue | null = null;
  for (const { seq, alert } of history.alerts) {
    if (to !== undefined && seq > to) break;
    result.push({
      seq,
      revision: alert.revision,
      time: alert.time,
      event: alert.event,
      from,
      to: alert.state,
      status: alert.status,
      operationInfo: alert.operationInfo,
      taskId: alert.task?.id,
      taskStatus: alert.taskStatus,
      ...(alert.hostId === undefined ? {} : { hostId: alert.hostId }),
    });
    from = alert.state;
  }
  return result;
}

/**
 * Replays the history (up to `to`) on `definition` — today's machine unless a test plants
 * another — and reports the first alert whose recorded state it does not reproduce.
 */
export function verify(history: HistoryFile, definition = definitionFor(history.alertName), to?: number): Verification {
  const ref = parseAlertSubject(history.alertName);
  let state = initialReplayState(definition, ref?.id ?? '');
  let verified = 0;
  const machine = { id: definition.machine.id, version: definition.version };
  for (const record of historyRecords(history)) {
    if (to !== undefined && record.seq > to) break;
    state = replayOne(definition, state, record);
    if (state.divergence) return { ok: false, verified, machine, divergence: state.divergence };
    verified += 1;
  }
  return { ok: true, verified, machine };
}
