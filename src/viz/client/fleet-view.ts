/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The fleet list, virtualised: a spacer as tall as every row, and a small pool of row elements
// placed over the part that is on screen. A frame rewrites only rows whose entity changed.
import type { Entity, Fleet } from './fleet.ts';
import { describeExtra, describeProgress, el, errorText } from './format.ts';

export const ROW_HEIGHT = 44;
const OVERSCAN = 4;

type Row = { root: HTMLElement; kind: HTMLElement; id: HTMLElement; desc: HTMLElement; bar: HTMLElement; fill: HTMLElement; progress: HTMLElement; error: HTMLElement; entity?: Entity; version: number };

export class FleetView {
  readonly #rows: Row[] = [];
  readonly #spacer: HTMLElement;
  #cursor = 0;
  selected: string | undefined;

  constructor(
    private readonly container: HTMLElement,
    private readonly fleet: Fleet,
    private readonly onSelect: (alertName: string) => void,
  ) {
    this.#spacer = el('div', 'spacer');
    container.append(this.#spacer);
    container.addEventListener('scroll', () => (this.fleet.dirty = true), { passive: true });
    container.addEventListener('keydown', (event) => this.#key(event));
    container.addEventListener('click', (event) => {
      const row = (event.target as HTMLElement).closest<HTMLElement>('.row');
      const name = row?.dataset['name'];
      if (!name) return;
      this.#cursor = this.fleet.view.findIndex((entity) => entity.alertName === name);
      this.onSelect(name);
    });
  }

  /** Called once per animation frame when the fleet changed (or the list scrolled). */
  render(): void {
    const view = this.fleet.view;
    this.#spacer.style.height = `${view.length * ROW_HEIGHT}px`;
    const first = Math.max(0, Math.floor(this.container.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const visible = Math.ceil(this.container.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
    const last = Math.min(view.length, first + visible);
    while (this.#rows.length < last - first) this.#rows.push(this.#newRow());
    this.#cursor = Math.min(this.#cursor, Math.max(0, view.length - 1));
    for (let slot = 0; slot < this.#rows.length; slot += 1) {
      const row = this.#rows[slot] as Row;
      const index = first + slot;
      const entity = view[index];
      if (!entity || index >= last) {
        if (row.entity) {
          // A spare row forgets its entity, so nothing finds a stale name in the DOM.
          row.root.hidden = true;
          row.entity = undefined;
          delete row.root.dataset['name'];
          delete row.root.dataset['seq'];
        }
        continue;
      }
      row.root.hidden = false;
      row.root.style.transform = `translateY(${index * ROW_HEIGHT}px)`;
      row.root.setAttribute('aria-posinset', String(index + 1));
      row.root.setAttribute('aria-setsize', String(view.length));
      const isCursor = index === this.#cursor;
      row.root.classList.toggle('cursor', isCursor);
      if (isCursor) this.container.setAttribute('aria-activedescendant', row.root.id);
      row.root.setAttribute('aria-selected', String(entity.alertName === this.selected));
      if (row.entity !== entity || row.version !== entity.version) this.#fill(row, entity);
    }
  }

  #newRow(): Row {
    const root = el('div', 'row');
    root.id = `fleet-row-${this.#rows.length}`;
    root.setAttribute('role', 'option');
    root.hidden = true;
    const kind = el('span', 'kind');
    const id = el('span', 'id');
    const desc = el('span', 'desc');
    const fill = el('span', 'fill');
    const bar = el('span', 'bar');
    bar.append(fill);
    const progress = el('span', 'progress-text');
    const error = el('span', 'error');
    const line = el('div', 'line');
    line.append(kind, id, desc);
    const line2 = el('div', 'line2');
    line2.append(bar, progress, error);
    root.append(line, line2);
    this.container.append(root);
    return { root, kind, id, desc, bar, fill, progress, error, version: 0 };
  }

  #fill(row: Row, entity: Entity): void {
    const info = entity.operationInfo;
    row.entity = entity;
    row.version = entity.version;
    row.root.dataset['name'] = entity.alertName;
    row.root.dataset['seq'] = String(entity.seq);
    row.kind.textContent = entity.kind.split('.').at(-1) ?? entity.kind;
    row.id.textContent = entity.id;
    row.desc.textContent = info.operationDescription;
    row.desc.dataset['tone'] = tone(info);
    const progress = describeProgress(info);
    row.bar.hidden = !progress;
    row.fill.style.width = `${progress?.fraction !== undefined ? Math.round(progress.fraction * 100) : 0}%`;
    row.fill.classList.toggle('indeterminate', progress !== undefined && progress.fraction === undefined);
    // Alerts carry OperationInfo, not the status: a settled row shows its extraData, always current.
    row.progress.textContent = progress?.text ?? describeExtra(info.extraData);
    const error = errorText(info);
    row.error.textContent = error ?? '';
    row.root.classList.toggle('failed', error !== undefined);
  }

  #key(event: KeyboardEvent): void {
    const view = this.fleet.view;
    if (!view.length) return;
    const page = Math.max(1, Math.floor(this.container.clientHeight / ROW_HEIGHT) - 1);
    const moves: Record<string, number> = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, PageDown: page, PageUp: -page };
    let cursor = this.#cursor;
    if (event.key in moves) cursor += moves[event.key] ?? 0;
    else if (event.key === 'Home') cursor = 0;
    else if (event.key === 'End') cursor = view.length - 1;
    else if (event.key === 'Enter' || event.key === ' ') {
      const entity = view[this.#cursor];
      if (entity) this.onSelect(entity.alertName);
      event.preventDefault();
      return;
    } else return;
    event.preventDefault();
    this.#cursor = Math.max(0, Math.min(view.length - 1, cursor));
    const top = this.#cursor * ROW_HEIGHT;
    if (top < this.container.scrollTop) this.container.scrollTop = top;
    else if (top + ROW_HEIGHT > this.container.scrollTop + this.container.clientHeight) this.container.scrollTop = top + ROW_HEIGHT - this.container.clientHeight;
    this.fleet.dirty = true;
  }
}

function tone(info: { lastError: [number, string]; stage: [number, number] }): string {
  if (info.lastError[0] !== 0) return 'error';
  return info.stage[0] < info.stage[1] ? 'busy' : 'settled';
}
