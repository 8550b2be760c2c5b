// `opstream viz <kind> --format svg|mermaid|json`: a machine's diagram from its definition, laid
// out by ELK (svg), as Mermaid, or as the XState machine config Stately's editor imports (json).
import { describeMachine, machineKinds, toMachineConfig } from '../viz/describe.ts';
import { layoutMachine } from '../viz/layout.ts';
import { renderMermaid } from '../viz/mermaid.ts';
import { renderSvg } from '../viz/svg.ts';

export const VIZ_FORMATS = ['svg', 'mermaid', 'json'] as const;
export type VizFormat = (typeof VIZ_FORMATS)[number];

/** Accepts the kind as its subject path (`Storage.Image`) or the machine id (`image`). */
export function resolveKind(name: string): string {
  const kinds = machineKinds();
  const found = kinds.find((kind) => kind === name || kind.toLowerCase() === name.toLowerCase() || describeMachine(kind).id === name);
  if (!found) throw new Error(`no machine for ${JSON.stringify(name)}; kinds: ${kinds.join(', ')}`);
  return found;
}

export async function vizOutput(name: string, format: VizFormat): Promise<string> {
  const kind = resolveKind(name);
  if (format === 'json') return `${JSON.stringify(toMachineConfig(kind), null, 2)}\n`;
  const machine = describeMachine(kind);
  if (format === 'mermaid') return renderMermaid(machine);
  return `${renderSvg(await layoutMachine(machine), { standalone: true })}\n`;
}

export async function viz(name: string, options: { format: VizFormat }): Promise<void> {
  process.stdout.write(await vizOutput(name, options.format));
}
