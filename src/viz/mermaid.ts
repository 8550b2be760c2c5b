// A machine description as a Mermaid `stateDiagram-v2` (renders in GitHub markdown). Mermaid has no
// "from any state" arrow, so machine-wide transitions start at an "any state" box, as in the SVG.
import { policyOf, type MachineDescription, type StateDescription } from './machine-types.ts';

/** Mermaid ids must be unique and plain: the dotted path with dots as underscores. */
const idOf = (path: string) => path.replace(/[^A-Za-z0-9_]/g, '_');

export function renderMermaid(machine: MachineDescription): string {
  const lines = ['stateDiagram-v2', `  %% ${machine.id} v${machine.version}: alerts ${machine.alertPattern}`];
  emitChildren(machine.root, lines, '  ');
  const anyTransitions = machine.root.transitions.filter((transition) => transition.kind === 'external');
  if (anyTransitions.length) {
    lines.push('  state "any state" as any_state');
    for (const transition of anyTransitions) {
      for (const target of transition.targets) lines.push(`  any_state --> ${idOf(target)} : ${transition.event}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function emitChildren(parent: StateDescription, lines: string[], indent: string): void {
  if (parent.initial) lines.push(`${indent}[*] --> ${idOf(parent.initial)}`);
  for (const state of parent.states) emitState(state, lines, indent);
  for (const state of parent.states) {
    for (const transition of state.transitions) {
      if (transition.kind !== 'external') continue;
      const label = transition.guard ? `${transition.event} [${transition.guard}]` : transition.event;
      for (const target of transition.targets) lines.push(`${indent}${idOf(state.path)} --> ${idOf(target)} : ${label}`);
    }
  }
}

function emitState(state: StateDescription, lines: string[], indent: string): void {
  const id = idOf(state.path);
  const policy = policyOf(state.meta);
  const details = [
    policy.status && `status: ${policy.status}`,
    policy.onResume && `on resume: ${policy.onResume}`,
    policy.cancel && `on cancel: ${policy.cancel}`,
    ...state.transitions.filter((t) => t.kind === 'internal').map((t) => `↻ ${t.event}`),
    ...state.transitions.filter((t) => t.kind === 'forbidden').map((t) => `✕ ${t.event}`),
  ].filter(Boolean);
  if (state.states.length) {
    lines.push(`${indent}state "${state.key}" as ${id} {`);
    emitChildren(state, lines, `${indent}  `);
    lines.push(`${indent}}`);
  } else {
    lines.push(`${indent}state "${state.key}" as ${id}`);
  }
  for (const detail of details) lines.push(`${indent}${id} : ${detail}`);
  if (state.type === 'final') lines.push(`${indent}${id} --> [*]`);
}
