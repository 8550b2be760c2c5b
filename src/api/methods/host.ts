import { z } from 'zod';
import { TaskInfo } from '../../domain/task.ts';
import { compileFilter, FILTER_TYPES } from '../../filters/alert-filter.ts';
import { compileTaskFilter } from '../../filters/task-filter.ts';
import { openAlertFeed } from '../../subscriptions/alert-feed.ts';
import { defineMethod } from '../method.ts';

export const hostMethods = [
  defineMethod({
    name: 'Host.getRunningTasks',
    params: z.strictObject({
      filter: z.string().default('*'),
      filterType: z.enum(FILTER_TYPES).default('glob'),
      /** What the filter matches: the task id (the seed's meaning) or its method name. */
      on: z.enum(['id', 'methodName']).default('id'),
    }),
    handler: async ({ filter, filterType, on }, { runtime }): Promise<TaskInfo[]> => {
      const matches = compileTaskFilter(filter, filterType);
      return runtime
        .runningTasks()
        .map(({ task }) => task)
        .filter((task) => matches(task[on]));
    },
  }),
  defineMethod({
    name: 'Host.subscribe',
    params: z.strictObject({ filter: z.string(), filterType: z.enum(FILTER_TYPES).default('glob') }),
    handler: async ({ filter, filterType }, { runtime, session }) => {
      const compiled = compileFilter(filter, filterType);
      const { subscriptionId } = await session.subscribe(() =>
        openAlertFeed(runtime.nc, { stream: runtime.alertLog.stream, filter: compiled }, ({ seq, alert }) =>
          session.notify('alert', { alertName: alert.alertName, operationInfo: alert.operationInfo, seq }),
        ),
      );
      return { subscriptionId };
    },
  }),
  defineMethod({
    name: 'Host.unsubscribe',
    params: z.strictObject({ subscriptionId: z.string() }),
    handler: async ({ subscriptionId }, { session }) => {
      await session.unsubscribe(subscriptionId);
      return {};
    },
  }),
];
