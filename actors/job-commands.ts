// The internal commands a composite job may run as steps, each as the event its entity takes —
// the same events the public methods send, so a step's task is an ordinary task of its entity.
import type { StepCommand } from '../machines/job.ts';
import { parseAlertSubject } from '../src/domain/subjects.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import type { EntityEvent, EntityRef } from './drivers/driver.ts';

type CommandTarget = { ref: EntityRef; event: (task: TaskInfo) => EntityEvent };

const COMMANDS: Record<string, (params: Record<string, unknown>) => Pick<CommandTarget, 'event'>> = {
  'VM.migrate': (params) => ({ event: (task) => ({ type: 'MIGRATE', task, dstHost: String(params['dstHost']) }) }),
  'StorageConnection.disconnect': () => ({ event: (task) => ({ type: 'DISCONNECT', task }) }),
};


/** Where a step's command goes and what its entity receives. */
export function commandTarget(command: StepCommand): CommandTarget {
  const build = COMMANDS[command.method];
  const ref = parseAlertSubject(command.alertName);
  if (!build || !ref) throw new Error(`a job cannot run ${command.method} on ${command.alertName}`);
  return { ref, ...build(command.params) };
}
