// `opstream tasks [filter]`: the running tasks, as a table or JSON.
import type { FilterType, TaskInfo } from '../index.ts';
import { withAgent, type AgentAccess } from './agent-access.ts';

export async function tasks(filter: string, options: AgentAccess & { regexp: boolean; on: 'id' | 'methodName'; host?: string; fleet: boolean; json: boolean }): Promise<void> {
  const filterType: FilterType = options.regexp ? 'regexp' : 'glob';
  const running = await withAgent(options, (client) => client.call<TaskInfo[]>('Host.getRunningTasks', { filter, filterType, on: options.on, ...(options.host ? { hostId: options.host } : {}), ...(options.fleet ? { scope: 'fleet' } : {}) }));
  if (options.json) {
    console.log(JSON.stringify(running, null, 2));
    return;
  }
  if (running.length === 0) {
    console.log('no running tasks');
    return;
  }
  const rows = running.map((task) => [task.id, task.methodName, JSON.stringify(task.kwargs)]);
  const widths = [36, Math.max(6, ...rows.map((row) => row[1]?.length ?? 0))];
  console.log(`${'TASK'.padEnd(widths[0] ?? 0)}  ${'METHOD'.padEnd(widths[1] ?? 0)}  KWARGS`);
  for (const [id, method, kwargs] of rows) console.log(`${(id ?? '').padEnd(widths[0] ?? 0)}  ${(method ?? '').padEnd(widths[1] ?? 0)}  ${kwargs}`);
}
