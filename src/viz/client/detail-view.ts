/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// One entity: its statechart with the current state lit, its history as a timeline, a scrubber
// that shows the state as it was at any sequence (the fold `opstream replay --to` does), and a
// verify action that runs today's machine over the history and marks the first divergence.
import { layoutMachine } from '../layout.ts';
import { activePaths, type MachineDescription, type StateValueLike } from '../machine-types.ts';
import { renderSvg } from '../svg.ts';
import { describeProgress, el, errorText, showState } from './format.ts';
import type { OperationInfo, RpcClient } from './rpc.ts';

export type Step = {
  seq: number;
  revision: number;
  time: string;
  event: { type: string; [key: string]: unknown };
  from: StateValueLike | null;
  to: StateValueLike;
  status: string;
  operationInfo: OperationInfo;
  taskId?: string;
  taskStatus?: string;
};

type Verification = { ok: boolean; verified: number; machine: { id: string; version: number }; divergence?: { seq: number; recorded: StateValueLike; recomputed?: StateValueLike; event: { type: string } } };

const MAX_TIMELINE_ROWS = 1000;

export class DetailView {
  #alertName: string | undefined;
  #steps: Step[] = [];
  /** Index of the step shown; undefined = follow the newest (live). */
  #cursor: number | undefined;
  #loading = false;
  /** How many alerts the entity has; History.get sends at most its newest 5,000. */
  #total = 0;
  #again = false;
  readonly #diagrams = new Map<string, Promise<string>>();
  readonly #parts: Record<'title' | 'status' | 'error' | 'diagram' | 'step' | 'timeline' | 'scrub' | 'position' | 'verdict' | 'live', HTMLElement>;

  constructor(
    private readonly root: HTMLElement,
    private readonly rpc: RpcClient,
  ) {
    const get = (id: string) => root.querySelector<HTMLElement>(`#${id}`) as HTMLElement;
    this.#parts = {
      title: get('entity-title'),
      status: get('entity-status'),
      error: get('entity-error'),
      diagram: get('diagram'),
      step: get('step'),
      timeline: get('timeline'),
      scrub: get('scrub'),
      position: get('scrub-position'),
      verdict: get('verdict'),
      live: get('live'),
    };
    const scrub = this.#parts.scrub as HTMLInputElement;
    scrub.addEventListener('input', () => this.moveTo(Number(scrub.value)));
    this.#parts.live.addEventListener('click', () => this.moveTo(undefined));
    get('verify').addEventListener('click', () => void this.verify());
    this.#parts.timeline.addEventListener('click', (event) => {
      const row = (event.target as HTMLElement).closest<HTMLElement>('tr[data-index]');
      if (row) this.moveTo(Number(row.dataset['index']));
    });
  }

  get alertName(): string | undefined {
    return this.#alertName;
  }

  async show(alertName: string, kind: string): Promise<void> {
    this.#alertName = alertName;
    this.#steps = [];
    this.#total = 0;
    this.#cursor = undefined;
    this.root.hidden = false;
    this.#parts.title.textContent = alertName;
    this.#parts.verdict.textContent = '';
    this.#parts.timeline.replaceChildren();
    const svg = await this.#diagram(kind);
    if (this.#alertName !== alertName) return; // another entity was selected while this one drew
    this.#parts.diagram.innerHTML = svg;
    await this.refresh();
  }

  /** Fetches the steps after the newest one held; coalesces calls that arrive while one runs. */
  async refresh(): Promise<void> {
    if (!this.#alertName) return;
    if (this.#loading) {
      this.#again = true;
      return;
    }
    this.#loading = true;
    try {
      do {
        this.#again = false;
        const alertName: string = this.#alertName;
        const after = this.#steps.at(-1)?.seq;
        const result = await this.rpc.call<{ steps: Step[]; total: number }>('History.get', { alertName, ...(after !== undefined ? { after } : {}) });
        // Another entity was selected meanwhile: drop this answer and fetch for that one.
        if (alertName !== this.#alertName) {
          this.#again = true;
          continue;
        }
        this.#total = result.total;
        if (result.steps.length) this.#append(result.steps);
      } while (this.#again);
    } finally {
      this.#loading = false;
    }
  }

  /** Shows the state as of step `index`; undefined follows the newest step. */
  moveTo(index: number | undefined): void {
    this.#cursor = index === undefined || index >= this.#steps.length - 1 ? undefined : Math.max(0, index);
    this.#render();
  }

  step(delta: number): void {
    const current = this.#cursor ?? this.#steps.length - 1;
    this.moveTo(current + delta);
  }

  async verify(): Promise<void> {
    if (!this.#alertName) return;
    const shown = this.#shown();
    const verdict = this.#parts.verdict;
    verdict.textContent = 'verifying…';
    verdict.dataset['tone'] = '';
    try {
      const to = shown && this.#cursor !== undefined ? shown.seq : undefined;
      const result = await this.rpc.call<Verification>('History.verify', { alertName: this.#alertName, ...(to !== undefined ? { to } : {}) });
      for (const row of this.#parts.timeline.querySelectorAll('tr.diverged')) row.classList.remove('diverged');
      const machine = `${result.machine.id} v${result.machine.version}`;
      if (result.ok || !result.divergence) {
        verdict.textContent = `✓ today's machine (${machine}) reproduces all ${result.verified} alerts${to !== undefined ? ` up to seq ${to}` : ''}`;
        verdict.dataset['tone'] = 'ok';
        return;
      }
      const { seq, recorded, recomputed, event } = result.divergence;
      verdict.textContent = `✕ diverges at seq ${seq} (${event.type}): recorded ${showState(recorded)}, today's machine ${recomputed === undefined ? 'refuses the event' : `reaches ${showState(recomputed)}`} — ${result.verified} alerts reproduce before it`;
      verdict.dataset['tone'] = 'error';
      const index = this.#steps.findIndex((step) => step.seq === seq);
      if (index >= 0) {
        this.moveTo(index);
        this.#parts.timeline.querySelector(`tr[data-index="${index}"]`)?.classList.add('diverged');
      }
    } catch (error) {
      verdict.textContent = `verify failed: ${(error as Error).message}`;
      verdict.dataset['tone'] = 'error';
    }
  }

  #diagram(kind: string): Promise<string> {
    let diagram = this.#diagrams.get(kind);
    if (!diagram) {
      diagram = this.rpc.call<MachineDescription>('Machine.describe', { kind }).then(async (machine) => renderSvg(await layoutMachine(machine)));
      diagram.catch(() => this.#diagrams.delete(kind));
      this.#diagrams.set(kind, diagram);
    }
    return diagram;
  }

  #append(steps: Step[]): void {
    const firstIndex = this.#steps.length;
    this.#steps.push(...steps);
    const rows = steps.map((step, offset) => timelineRow(step, firstIndex + offset));
    this.#parts.timeline.append(...rows);
    while (this.#parts.timeline.childElementCount > MAX_TIMELINE_ROWS) this.#parts.timeline.firstElementChild?.remove();
    this.#render();
  }

  #shown(): Step | undefined {
    return this.#steps[this.#cursor ?? this.#steps.length - 1];
  }

  #render(): void {
    const step = this.#shown();
    const index = this.#cursor ?? this.#steps.length - 1;
    const scrub = this.#parts.scrub as HTMLInputElement;
    scrub.max = String(Math.max(0, this.#steps.length - 1));
    scrub.value = String(index);
    scrub.setAttribute('aria-valuetext', step ? `seq ${step.seq}, ${showState(step.to)}` : 'no history');
    const older = this.#total - this.#steps.length;
    this.#parts.position.textContent = step ? `${index + 1} / ${this.#steps.length} · seq ${step.seq}${older > 0 ? ` (${older} older not shown)` : ''}` : '';
    this.#parts.live.toggleAttribute('disabled', this.#cursor === undefined);
    this.root.dataset['mode'] = this.#cursor === undefined ? 'live' : 'history';
    for (const row of this.#parts.timeline.querySelectorAll('tr.current')) row.classList.remove('current');
    const current = this.#parts.timeline.querySelector<HTMLElement>(`tr[data-index="${index}"]`);
    current?.classList.add('current');
    current?.scrollIntoView({ block: 'nearest' });
    if (!step) return;
    this.#light(step);
    this.#parts.status.textContent = `${step.status} · ${showState(step.to)}`;
    this.#parts.status.dataset['state'] = showState(step.to);
    const error = errorText(step.operationInfo);
    this.#parts.error.textContent = error ? `lastError ${error}` : '';
    this.#parts.error.hidden = !error;
    this.#parts.step.replaceChildren(...stepDetails(step));
  }

  /** Lights the states active after `step` and the transition that got there. */
  #light(step: Step): void {
    const svg = this.#parts.diagram;
    for (const node of svg.querySelectorAll('.active')) node.classList.remove('active');
    const active = activePaths(step.to);
    for (const path of active) svg.querySelector(`.state[data-path="${CSS.escape(path)}"]`)?.classList.add('active');
    const before = new Set(['', ...activePaths(step.from)]);
    for (const edge of svg.querySelectorAll<SVGGElement>(`.edge[data-event="${CSS.escape(step.event.type)}"]`)) {
      if (before.has(edge.dataset['source'] ?? '\u0000') && active.includes(edge.dataset['target'] ?? '')) edge.classList.add('active');
    }
  }
}

function timelineRow(step: Step, index: number): HTMLTableRowElement {
  const row = el('tr');
  row.dataset['index'] = String(index);
  row.dataset['seq'] = String(step.seq);
  const task = step.taskId && step.event.type !== 'WORK_PROGRESS' ? ` (${step.taskId.slice(0, 8)})` : '';
  const info = step.operationInfo;
  const progress = describeProgress(info);
  const error = errorText(info);
  const cells = [
    String(step.seq),
    step.time.slice(11, 23),
    step.event.type + task,
    `${showState(step.from)} → ${showState(step.to)}`,
    [info.operationDescription, progress?.text, error && `⚠ ${error}`].filter(Boolean).join(' · '),
  ];
  for (const text of cells) row.append(el('td', undefined, text));
  if (error) row.classList.add('has-error');
  return row;
}

function stepDetails(step: Step): HTMLElement[] {
  const info = step.operationInfo;
  const progress = describeProgress(info);
  const rows: [string, string][] = [
    ['seq', `${step.seq} (revision ${step.revision})`],
    ['time', step.time],
    ['event', JSON.stringify(step.event)],
    ['task', step.taskId ? `${step.taskId}${step.taskStatus ? ` · ${step.taskStatus}` : ''}` : '—'],
    ['state', `${showState(step.from)} → ${showState(step.to)}`],
    ['status', step.status],
    ['operation', `${info.operationDescription}${info.stageDescription ? ` · ${info.stageDescription}` : ''}`],
    ['stage', `${info.stage[0]}/${info.stage[1]} · ${info.percentage < 0 ? 'percentage unknown' : `${info.percentage}%`}`],
    ['lastError', errorText(info) ?? 'none'],
    ['extraData', JSON.stringify(info.extraData)],
  ];
  const list = el('dl');
  for (const [term, value] of rows) {
    const dd = el('dd', term === 'lastError' && info.lastError[0] !== 0 ? 'error' : undefined, value);
    list.append(el('dt', undefined, term), dd);
  }
  const bar = el('div', 'bigbar');
  const fill = el('span', 'fill');
  fill.style.width = `${progress?.fraction !== undefined ? Math.round(progress.fraction * 100) : progress ? 100 : 0}%`;
  if (progress && progress.fraction === undefined) fill.classList.add('indeterminate');
  bar.append(fill);
  bar.hidden = !progress;
  return [bar, list];
}
