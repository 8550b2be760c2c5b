// Read methods for the visualizer and any other tool: the machines as data to draw
// (Machine.list, Machine.describe), the entities with where each stands (History.list), and an
// entity's history step by step with the verification `opstream replay --to/--verify` prints.
import { z } from 'zod';
import { kindSubjectPattern, parseAlertSubject } from '../../domain/subjects.ts';
import { compileFilter, FILTER_TYPES } from '../../filters/alert-filter.ts';
import { definitionFor, steps, verify } from '../../replay/debugger.ts';
import { loadHistory } from '../../replay/history.ts';
import { alertPrefixOf, describeMachine, machineDefinition, machineKinds } from '../../viz/describe.ts';
import { defineMethod } from '../method.ts';

/** Most steps one History.get returns (the newest); `total` says how many there are. */
export const MAX_HISTORY_STEPS = 5_000;

const AlertName = z.string().min(1).max(512);
const Seq = z.number().int().min(0);

export const historyMethods = [
  defineMethod({
    name: 'Machine.list',
    access: 'read',
    params: z.strictObject({}),
    // Kinds come from the machines the agent runs, so a new kind (jobs) shows up by itself.
    handler: async (_params, { runtime }) =>
      machineKinds().map((kind) => {
        const definition = machineDefinition(kind);
        const entities = runtime.entitiesOf(definition.kind).length;
        return { kind, id: definition.machine.id, version: definition.version, alertPrefix: alertPrefixOf(definition.kind), alertPattern: kindSubjectPattern(definition.kind), entities };
      }),
  }),
  defineMethod({
    name: 'Machine.describe',
    access: 'read',
    params: z.strictObject({ kind: z.string().min(1).max(64) }),
    handler: async ({ kind }) => describeMachine(kind),
  }),
  defineMethod({
    name: 'History.list',
    access: 'read',
    params: z.strictObject({ filter: z.string().default('vdsm.>'), filterType: z.enum(FILTER_TYPES).default('glob') }),
    // Every entity the filter matches with its status, state, OperationInfo and last sequence:
    // where a fleet view starts before it follows Host.subscribe. Diverged entities are left out
    // (their state cannot be trusted); History.verify explains them.
    handler: async ({ filter, filterType }, { runtime }) => {
      const compiled = compileFilter(filter, filterType);
      return machineKinds().flatMap((kind) => {
        const definition = machineDefinition(kind);
        return runtime
          .entitiesOf(definition.kind)
          .filter((actor) => compiled.matches(actor.subject))
          .map((actor) => {
            const { status, state, operationInfo, task } = actor.view();
            return { alertName: actor.subject, kind, id: actor.ref.id, status, state, operationInfo, taskId: task?.id ?? null, seq: actor.lastSeq };
          });
      });
    },
  }),
  defineMethod({
    name: 'History.get',
    access: 'read',
    params: z.strictObject({
      alertName: AlertName,
      /** Stop at this stream sequence (time travel), as `opstream replay --to`. */
      to: Seq.optional(),
      /** Only the steps after this sequence (a page that has the rest already). */
      after: Seq.optional(),
      limit: z.number().int().min(1).max(MAX_HISTORY_STEPS).default(MAX_HISTORY_STEPS),
    }),
    handler: async ({ alertName, to, after, limit }, { runtime }) => {
      const history = await loadHistory(runtime.alertLog, alertName);
      const all = steps(history, to);
      const wanted = after === undefined ? all : all.filter((step) => step.seq > after);
      const ref = parseAlertSubject(alertName);
      return { alertName, kind: ref?.kind, total: all.length, steps: wanted.slice(-limit) };
    },
  }),
  defineMethod({
    name: 'History.verify',
    access: 'read',
    params: z.strictObject({ alertName: AlertName, to: Seq.optional() }),
    // Today's machine over the recorded history: the first divergence, as `opstream replay --verify`.
    handler: async ({ alertName, to }, { runtime }) => {
      const history = await loadHistory(runtime.alertLog, alertName);
      return { alertName, ...verify(history, definitionFor(alertName), to) };
    },
  }),
];
