// Host.*: running tasks and operations, and subscriptions to alerts through the agent's shared read.
import { z } from 'zod';
import { alertNotification } from '../../domain/alert.ts';
import { ErrorCodes, OpstreamError } from '../../domain/errors.ts';
import { EntityId } from '../../domain/subjects.ts';
import type { TaskInfo } from '../../domain/task.ts';
import { compileFilter, FILTER_TYPES } from '../../filters/alert-filter.ts';
import { compileTaskFilter } from '../../filters/task-filter.ts';
import { defineMethod } from '../method.ts';
import type { Session } from '../session.ts';

/** Subscriptions push notifications, which need a connection to push them on. */
function requireSession(session: Session | undefined, method: string): Session {
  if (session) return session;
  throw new OpstreamError(
    ErrorCodes.MethodNotFound,
    `${method} needs a WebSocket connection; on the bus, follow alerts with a durable manager (startManager) or a JetStream consumer on vdsm.>`,
  );
}

export const hostMethods = [
  defineMethod({
    name: 'Host.list',
    access: 'read',
    params: z.strictObject({}),
    // The fleet as this agent sees it: each host's lease epoch, and whether it answers now.
    handler: async (_params, { fleet }) => ({
      hostId: fleet?.hostId,
      hosts: (fleet?.hosts() ?? []).map(({ hostId, epoch, state, responsive }) => ({ hostId, epoch, state, responsive })),
    }),
  }),
  defineMethod({
    name: 'Host.getRunningTasks',
    access: 'read',
    params: z.strictObject({
      filter: z.string().default('*'),
      filterType: z.enum(FILTER_TYPES).default('glob'),
      /** What the filter matches: the task id (the seed's meaning) or its method name. */
      on: z.enum(['id', 'methodName']).default('id'),
      /** Another host's agent answers (the call goes there, as every call naming a `hostId` does). */
      hostId: EntityId.optional(),
      /**
       * VDSM's answer is one host's tasks, so `host` (the default) lists the tasks this agent's host
       * runs; in a fleet every agent mirrors every entity, and `fleet` lists them all.
       */
      scope: z.enum(['host', 'fleet']).default('host'),
    }),
    handler: async ({ filter, filterType, on, scope }, { runtime, fleet }): Promise<TaskInfo[]> => {
      const matches = compileTaskFilter(filter, filterType);
      const host = scope === 'host' ? fleet?.hostId : undefined;
      return runtime
        .runningTasks()
        .filter((running) => host === undefined || running.hostId === host)
        .map(({ task }) => task)
        .filter((task) => matches(task[on]));
    },
  }),
  defineMethod({
    name: 'Host.getRunningOperations',
    access: 'read',
    params: z.strictObject({ filter: z.string().default('vdsm.>'), filterType: z.enum(FILTER_TYPES).default('glob') }),
    // What `opstream watch` starts from: each entity the filter matches that is mid-operation,
    // with its task, OperationInfo and the sequence of its last alert.
    handler: async ({ filter, filterType }, { runtime }) => {
      const compiled = compileFilter(filter, filterType);
      return runtime.runningTasks().filter(({ alertName }) => compiled.matches(alertName));
    },
  }),
  defineMethod({
    name: 'Host.subscribe',
    access: 'read',
    params: z.strictObject({
      filter: z.string(),
      filterType: z.enum(FILTER_TYPES).default('glob'),
      /** Deliver every matching alert after this stream sequence first, then go live. */
      since: z.number().int().min(0).optional(),
    }),
    handler: async ({ filter, filterType, since }, { runtime, session, fanout }) => {
      const connection = requireSession(session, 'Host.subscribe');
      const compiled = compileFilter(filter, filterType);
      const latest = await runtime.alertLog.streamLastSequence();
      if (since !== undefined && since > latest) {
        throw new OpstreamError(ErrorCodes.InvalidParams, `Host.subscribe: since ${since} is past the stream's last sequence ${latest}`);
      }
      let id: string | undefined;
      const { subscriptionId, feed } = await connection.subscribe(() =>
        fanout.subscribe(
          compiled,
          since ?? latest,
          (delivered) => connection.notify('alert', alertNotification(delivered.alert, delivered.seq), delivered),
          // Ended without being asked (too far behind, the agent stopping): the client is told and
          // resubscribes with `since` from the last seq it saw.
          (reason) => {
            if (!id) return;
            connection.dropped(id);
            void connection.notify('subscriptionEnded', { subscriptionId: id, reason });
          },
        ),
      );
      id = subscriptionId;
      return { subscriptionId, seq: feed.startedAfter };
    },
  }),
  defineMethod({
    name: 'Host.unsubscribe',
    access: 'read',
    params: z.strictObject({ subscriptionId: z.string() }),
    handler: async ({ subscriptionId }, { session }) => {
      await requireSession(session, 'Host.unsubscribe').unsubscribe(subscriptionId);
      return {};
    },
  }),
];
