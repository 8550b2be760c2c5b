// Reads a machine's drawing straight from its XState definition (no second copy to drift), and
// turns it back into a machine config that XState and Stately's editor import.
import type { AnyStateMachine } from 'xstate';
import { MACHINES, type MachineDefinition } from '../../machines/index.ts';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import { kindSubjectPattern } from '../domain/subjects.ts';
import type { MachineDescription, StateDescription, StateType, TransitionDescription } from './machine-types.ts';

type AnyStateNode = AnyStateMachine['root'];
type AnyTransition = NonNullable<ReturnType<AnyStateNode['transitions']['get']>>[number];

const definitions = MACHINES as Partial<Record<string, MachineDefinition>>;

/** The kinds that have a machine, in the order of MACHINES (new kinds appear by themselves). */
export function machineKinds(): string[] {
  return Object.keys(MACHINES);
}

export function machineDefinition(kind: string): MachineDefinition {
  const definition = definitions[kind];
  if (!definition) {
    throw new OpstreamError(ErrorCodes.InvalidParams, `no machine for kind ${JSON.stringify(kind)}; kinds: ${machineKinds().join(', ')}`);
  }
  return definition;
}

export function describeMachine(kind: string): MachineDescription {
  return describeDefinition(machineDefinition(kind));
}

/** What every alert name of the kind starts with: its subject up to the first id (`vdsm.VM.`). */
export function alertPrefixOf(kind: MachineDefinition['kind']): string {
  const pattern = kindSubjectPattern(kind);
  return pattern.slice(0, pattern.indexOf('*'));
}

/** Any machine definition as data (tests pass machines that are not registered). */
export function describeDefinition(definition: MachineDefinition): MachineDescription {
  return {
    kind: definition.kind,
    alertPrefix: alertPrefixOf(definition.kind),
    alertPattern: kindSubjectPattern(definition.kind),
    id: definition.machine.id,
    version: definition.version,
    root: describeState(definition.machine.root),
  };
}

/** Relative dotted path of a state node (the root's is ''). */
const pathOf = (node: AnyStateNode): string => node.path.join('.');

function describeState(node: AnyStateNode): StateDescription {
  const transitions: TransitionDescription[] = [];
  for (const [event, list] of node.transitions) {
    for (const transition of list) transitions.push(describeTransition(event, transition));
  }
  const initial = node.initial?.target[0];
  return {
    key: node.key,
    path: pathOf(node),
    type: node.type as StateType,
    ...(initial ? { initial: pathOf(initial) } : {}),
    meta: node.meta ? (JSON.parse(JSON.stringify(node.meta)) as Record<string, unknown>) : null,
    ...(node.description ? { description: node.description } : {}),
    transitions,
    states: Object.values(node.states).map(describeState),
  };
}

function describeTransition(event: string, transition: AnyTransition): TransitionDescription {
  const targets = (transition.target ?? []).map(pathOf);
  const actions = transition.actions.map(actionName);
  const kind = targets.length ? 'external' : actions.length ? 'internal' : 'forbidden';
  const guard = transition.guard ? nameOf(transition.guard) : undefined;
  return { event, targets, kind, actions, ...(guard ? { guard } : {}) };
}

function actionName(action: unknown): string {
  return nameOf(action);
}

function nameOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'function') return value.name || 'inline';
  if (value && typeof value === 'object' && 'type' in value && typeof value.type === 'string') return value.type;
  return 'inline';
}

/**
 * The machine as an XState config object (JSON): ids, initial states, meta, transitions with
 * `#id` targets and named actions/guards — what `createMachine(config)` and Stately's editor
 * ("Import") take. Implementations of the actions are code and stay in machines/.
 */
export function toMachineConfig(kind: string): Record<string, unknown> {
  const machine = machineDefinition(kind).machine;
  const config = stateConfig(machine.root, machine.id);
  return { id: machine.id, ...config };
}

function stateConfig(node: AnyStateNode, machineId: string): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  if (node.type === 'parallel' || node.type === 'final' || node.type === 'history') config['type'] = node.type;
  const initial = node.initial?.target[0];
  if (initial) config['initial'] = initial.key;
  if (node.description) config['description'] = node.description;
  if (node.meta) config['meta'] = JSON.parse(JSON.stringify(node.meta));
  const entry = node.entry.map((action: unknown) => serializableAction(action));
  if (entry.length) config['entry'] = entry;
  const on: Record<string, unknown> = {};
  for (const [event, list] of node.transitions) {
    const serialized = list.map((transition) => {
      const out: Record<string, unknown> = {};
      const targets = (transition.target ?? []).map((target) => `#${target.id}`);
      if (targets.length) out['target'] = targets.length === 1 ? targets[0] : targets;
      const actions = transition.actions.map((action: unknown) => serializableAction(action));
      if (actions.length) out['actions'] = actions;
      if (transition.guard) out['guard'] = nameOf(transition.guard);
      return out;
    });
    on[event] = serialized.length === 1 ? serialized[0] : serialized;
  }
  if (Object.keys(on).length) config['on'] = on;
  const children = Object.values(node.states);
  if (children.length) {
    config['states'] = Object.fromEntries(children.map((child) => [child.key, stateConfig(child, machineId)]));
  }
  return config;
}

/** Named actions keep their params (plain data); inline functions become their name. */
function serializableAction(action: unknown): unknown {
  if (action && typeof action === 'object' && 'type' in action) {
    const record = action as { type: unknown; params?: unknown };
    return typeof record.params === 'object' && record.params !== null && typeof record.params !== 'function'
      ? { type: record.type, params: record.params }
      : record.type;
  }
  return nameOf(action);
}
