// Lays a machine description out with elkjs (the ELK layered algorithm Stately's tools use):
// states become boxes (compound states contain their children), transitions become routed
// edges labelled with their events. Runs alike in Node (the CLI) and in the browser page.
import elkModule, { type ElkExtendedEdge, type ElkNode } from 'elkjs/lib/elk.bundled.js';
import { policyOf, type MachineDescription, type StateDescription } from './machine-types.ts';

/** Text is drawn in a monospace face, so its width can be known without a DOM to measure in. */
export const FONT = { title: 13, line: 11, charWidth: 0.62 } as const;
// elkjs is CommonJS: its constructor is both module.exports and its `default` property.
const ELK = elkModule.default;
const LINE_HEIGHT = 15;
const TITLE_HEIGHT = 20;
const PAD = 10;

export type DrawnNode = {
  /** `s:<path>` for states, `i:<path>` for a compound's initial marker, `any` for root transitions. */
  id: string;
  kind: 'state' | 'initial' | 'any';
  path: string;
  type: StateDescription['type'] | 'pseudo';
  title: string;
  lines: { text: string; role: 'status' | 'policy' | 'internal' | 'forbidden' }[];
  x: number;
  y: number;
  width: number;
  height: number;
  depth: number;
  compound: boolean;
};

export type DrawnEdge = {
  id: string;
  event: string;
  /** State path the transition is declared on ('' = the whole machine, 'initial' markers: null). */
  source: string | null;
  target: string;
  label: string;
  points: { x: number; y: number }[];
  labelBox?: { x: number; y: number; width: number; height: number };
};

export type Drawing = { machineId: string; width: number; height: number; nodes: DrawnNode[]; edges: DrawnEdge[] };

const textWidth = (text: string, size: number) => Math.ceil(text.length * size * FONT.charWidth);

function stateLines(state: StateDescription): DrawnNode['lines'] {
  const policy = policyOf(state.meta);
  const lines: DrawnNode['lines'] = [];
  if (policy.status) lines.push({ text: `status: ${policy.status}`, role: 'status' });
  if (policy.onResume) lines.push({ text: `on resume: ${policy.onResume}`, role: 'policy' });
  if (policy.cancel) lines.push({ text: `on cancel: ${policy.cancel}`, role: 'policy' });
  for (const transition of state.transitions) {
    if (transition.kind === 'internal') lines.push({ text: `↻ ${transition.event}`, role: 'internal' });
    if (transition.kind === 'forbidden') lines.push({ text: `✕ ${transition.event}`, role: 'forbidden' });
  }
  return lines;
}

function headerSize(title: string, lines: DrawnNode['lines']): { width: number; height: number } {
  const width = Math.max(textWidth(title, FONT.title), ...lines.map((line) => textWidth(line.text, FONT.line))) + 2 * PAD;
  return { width: Math.max(width, 90), height: TITLE_HEIGHT + lines.length * LINE_HEIGHT + PAD };
}

export async function layoutMachine(machine: MachineDescription): Promise<Drawing> {
  const meta = new Map<string, Omit<DrawnNode, 'x' | 'y' | 'width' | 'height'>>();
  const edges: ElkExtendedEdge[] = [];
  const edgeInfo = new Map<string, Omit<DrawnEdge, 'points' | 'labelBox'>>();

  const addEdge = (source: string, target: string, info: Omit<DrawnEdge, 'points' | 'labelBox' | 'id'>) => {
    const id = `e${edges.length}`;
    const labels = info.label ? [{ id: `${id}:l`, text: info.label, width: textWidth(info.label, FONT.line) + 8, height: 16 }] : [];
    edges.push({ id, sources: [source], targets: [target], labels });
    edgeInfo.set(id, { id, ...info });
  };

  const initialMarker = (parent: StateDescription, depth: number): ElkNode[] => {
    if (!parent.initial) return [];
    const id = `i:${parent.path}`;
    meta.set(id, { id, kind: 'initial', path: parent.path, type: 'pseudo', title: '', lines: [], depth, compound: false });
    addEdge(id, `s:${parent.initial}`, { event: '', source: null, target: parent.initial, label: '' });
    return [{ id, width: 12, height: 12 }];
  };

  const build = (state: StateDescription, depth: number): ElkNode => {
    const id = `s:${state.path}`;
    const lines = stateLines(state);
    const compound = state.states.length > 0;
    meta.set(id, { id, kind: 'state', path: state.path, type: state.type, title: state.key, lines, depth, compound });
    for (const transition of state.transitions) {
      if (transition.kind !== 'external') continue;
      const label = transition.guard ? `${transition.event} [${transition.guard}]` : transition.event;
      for (const target of transition.targets) addEdge(id, `s:${target}`, { event: transition.event, source: state.path, target, label });
    }
    const header = headerSize(state.key, lines);
    if (!compound) return { id, ...header };
    return {
      id,
      layoutOptions: {
        'elk.padding': `[top=${header.height + 8},left=${PAD + 4},bottom=${PAD + 4},right=${PAD + 4}]`,
        'elk.nodeSize.constraints': 'MINIMUM_SIZE',
        'elk.nodeSize.minimum': `(${header.width}, ${header.height + 40})`,
      },
      children: [...initialMarker(state, depth + 1), ...state.states.map((child) => build(child, depth + 1))],
    };
  };

  const root = machine.root;
  const children: ElkNode[] = [...initialMarker(root, 0), ...root.states.map((state) => build(state, 0))];
  const rootTransitions = root.transitions.filter((transition) => transition.kind === 'external');
  if (rootTransitions.length) {
    // Transitions declared on the machine itself apply in every state: drawn from one "any state" box.
    const title = 'any state';
    meta.set('any', { id: 'any', kind: 'any', path: '', type: 'pseudo', title, lines: [], depth: 0, compound: false });
    children.push({ id: 'any', ...headerSize(title, []) });
    for (const transition of rootTransitions) {
      for (const target of transition.targets) addEdge('any', `s:${target}`, { event: transition.event, source: '', target, label: transition.event });
    }
  }

  const elk = new ELK();
  const graph: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.json.edgeCoords': 'ROOT',
      'elk.json.shapeCoords': 'ROOT',
      'elk.layered.spacing.nodeNodeBetweenLayers': '36',
      'elk.spacing.nodeNode': '28',
      'elk.spacing.edgeLabel': '3',
      'elk.layered.nodePlacement.strategy': 'NETWORK_SIMPLEX',
      'elk.padding': '[top=12,left=12,bottom=12,right=12]',
      'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
      'elk.layered.cycleBreaking.strategy': 'MODEL_ORDER',
      'elk.edgeLabels.inline': 'true',
      'elk.layered.spacing.edgeNodeBetweenLayers': '14',
    },
    children,
    edges,
  };
  const laid = await elk.layout(graph);

  const nodes: DrawnNode[] = [];
  const collect = (node: ElkNode) => {
    const info = meta.get(node.id);
    if (info) nodes.push({ ...info, x: node.x ?? 0, y: node.y ?? 0, width: node.width ?? 0, height: node.height ?? 0 });
    for (const child of node.children ?? []) collect(child);
  };
  for (const child of laid.children ?? []) collect(child);
  const drawnEdges: DrawnEdge[] = (laid.edges ?? []).flatMap((edge: ElkExtendedEdge) => {
    const info = edgeInfo.get(edge.id);
    const section = edge.sections?.[0];
    if (!info || !section) return [];
    const label = edge.labels?.[0];
    return [
      {
        ...info,
        points: [section.startPoint, ...(section.bendPoints ?? []), section.endPoint],
        ...(label ? { labelBox: { x: label.x ?? 0, y: label.y ?? 0, width: label.width ?? 0, height: label.height ?? 0 } } : {}),
      },
    ];
  });
  return { machineId: machine.id, width: laid.width ?? 0, height: laid.height ?? 0, nodes, edges: drawnEdges };
}
