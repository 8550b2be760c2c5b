// Draws a laid-out machine as SVG markup (a string, so the CLI and the page share it). Colours
// come from CSS classes: the page themes them (dark/light); standalone exports embed a style.
import { FONT, type Drawing, type DrawnEdge, type DrawnNode } from './layout.ts';

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char] ?? char);

/** Light-theme colours for an SVG opened on its own (the page overrides them with its theme). */
export const STANDALONE_STYLE = `
.sc{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,monospace;background:#fff}
.sc .state>rect{fill:#f8fafc;stroke:#64748b;stroke-width:1.2}
.sc .state.compound>rect{fill:#f1f5f9;stroke-dasharray:0}
.sc .state.final>rect{stroke-width:3}
.sc .title{font-size:${FONT.title}px;font-weight:700;fill:#0f172a}
.sc .line{font-size:${FONT.line}px;fill:#475569}
.sc .line.status{fill:#0369a1}.sc .line.forbidden{fill:#b91c1c}.sc .line.internal{fill:#64748b}
.sc .any>rect{fill:none;stroke:#94a3b8;stroke-dasharray:4 3}
.sc .initial{fill:#0f172a}
.sc .edge path{fill:none;stroke:#94a3b8;stroke-width:1.3}
.sc .edge .label rect{fill:#fff}.sc .edge .label text{font-size:${FONT.line}px;fill:#334155}
.sc .arrow{fill:#94a3b8}
.sc .state.active>rect{fill:#dbeafe;stroke:#2563eb;stroke-width:2.5}
.sc .edge.active path{stroke:#2563eb;stroke-width:2.5}
`;

export type SvgOptions = { standalone?: boolean };

export function renderSvg(drawing: Drawing, options: SvgOptions = {}): string {
  const marker = `arrow-${drawing.machineId}`;
  const width = Math.ceil(drawing.width);
  const height = Math.ceil(drawing.height);
  const nodes = [...drawing.nodes].sort((a, b) => Number(b.compound) - Number(a.compound) || a.depth - b.depth);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="sc" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="statechart of ${escape(drawing.machineId)}">`,
    options.standalone ? `<style>${STANDALONE_STYLE}</style><rect width="100%" height="100%" fill="#fff"/>` : '',
    `<defs><marker id="${marker}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path class="arrow" d="M0,0 L10,5 L0,10 z"/></marker></defs>`,
    ...nodes.map(renderNode),
    ...drawing.edges.map((edge) => renderEdge(edge, marker)),
    '</svg>',
  ];
  return parts.join('');
}

function renderNode(node: DrawnNode): string {
  if (node.kind === 'initial') {
    return `<circle class="initial" cx="${node.x + node.width / 2}" cy="${node.y + node.height / 2}" r="${node.width / 2}"/>`;
  }
  const classes = ['state', node.kind === 'any' ? 'any' : '', node.compound ? 'compound' : '', node.type === 'final' ? 'final' : '']
    .filter(Boolean)
    .join(' ');
  const x = node.x + 10;
  let y = node.y + 17;
  const text = [`<text class="title" x="${x}" y="${y}">${escape(node.title)}</text>`];
  for (const line of node.lines) {
    y += 15;
    text.push(`<text class="line ${line.role}" x="${x}" y="${y}">${escape(line.text)}</text>`);
  }
  const data = node.kind === 'state' ? ` data-path="${escape(node.path)}"` : '';
  return `<g class="${classes}"${data}><title>${escape(node.path || node.title)}</title><rect x="${node.x}" y="${node.y}" width="${node.width}" height="${node.height}" rx="8"/>${text.join('')}</g>`;
}

function renderEdge(edge: DrawnEdge, marker: string): string {
  const d = edge.points.map((point, index) => `${index ? 'L' : 'M'}${round(point.x)},${round(point.y)}`).join(' ');
  const label = edge.labelBox
    ? `<g class="label"><rect x="${edge.labelBox.x}" y="${edge.labelBox.y}" width="${edge.labelBox.width}" height="${edge.labelBox.height}" rx="3"/><text x="${edge.labelBox.x + 4}" y="${edge.labelBox.y + 12}">${escape(edge.label)}</text></g>`
    : '';
  const data = edge.event ? ` data-event="${escape(edge.event)}" data-source="${escape(edge.source ?? '')}" data-target="${escape(edge.target)}"` : '';
  return `<g class="edge"${data}><path d="${d}" marker-end="url(#${marker})"/>${label}</g>`;
}

const round = (value: number) => Math.round(value * 10) / 10;
