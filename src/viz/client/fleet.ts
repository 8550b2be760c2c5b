/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The fleet: every entity the filter matches, sorted by kind then id. Alerts update entries in
// place and only mark the list dirty; the view redraws once per animation frame, so 300 alerts/s
// cost at most 60 redraws of the rows on screen.
import type { AlertParams, OperationInfo } from './rpc.ts';

export type KindInfo = { kind: string; id: string; version: number; alertPrefix: string; alertPattern: string };

/**
 * The entity id an alert name holds under `pattern` (`vdsm.VM.*.Disk.*` → `web.d1`), or undefined
 * when the name is not of that kind: same number of tokens, literal tokens equal.
 */
export function idUnder(pattern: string, alertName: string): string | undefined {
  const want = pattern.split('.');
  const have = alertName.split('.');
  if (want.length !== have.length) return undefined;
  const ids: string[] = [];
  for (let i = 0; i < want.length; i += 1) {
    if (want[i] === '*') ids.push(have[i] as string);
    else if (want[i] !== have[i]) return undefined;
  }
  return ids.join('.');
}

/** The kind an alert name belongs to, and the entity id in it. */
export function kindOfAlert(kinds: KindInfo[], alertName: string): { kind: KindInfo; id: string } | undefined {
  for (const kind of kinds) {
    const id = idUnder(kind.alertPattern, alertName);
    if (id !== undefined) return { kind, id };
  }
  return undefined;
}

export type Entity = {
  alertName: string;
  kind: string;
  id: string;
  operationInfo: OperationInfo;
  /** VDSM status, when known from History.list (alerts carry OperationInfo only). */
  status?: string;
  seq: number;
  /** Bumped on every change, so a row redraws only when its entity changed. */
  version: number;
};

export type ListedEntity = { alertName: string; kind: string; id: string; status: string; operationInfo: OperationInfo; seq: number };

export class Fleet {
  readonly #byName = new Map<string, Entity>();
  #sorted: Entity[] = [];
  #kinds: KindInfo[] = [];
  #kindFilter: string | null = null;
  #view: Entity[] | undefined;
  /** Set when anything changed since the last frame. */
  dirty = true;

  setKinds(kinds: KindInfo[]): void {
    this.#kinds = kinds;
    this.#resort();
  }

  get kinds(): KindInfo[] {
    return this.#kinds;
  }

  setKindFilter(kind: string | null): void {
    this.#kindFilter = kind;
    this.#view = undefined;
    this.dirty = true;
  }

  get kindFilter(): string | null {
    return this.#kindFilter;
  }

  /** The entities shown: the kind tab applied. */
  get view(): Entity[] {
    this.#view ??= this.#kindFilter === null ? this.#sorted : this.#sorted.filter((entity) => entity.kind === this.#kindFilter);
    return this.#view;
  }

  get size(): number {
    return this.#sorted.length;
  }

  count(kind: string): number {
    let n = 0;
    for (const entity of this.#sorted) if (entity.kind === kind) n += 1;
    return n;
  }

  get(alertName: string): Entity | undefined {
    return this.#byName.get(alertName);
  }

  clear(): void {
    this.#byName.clear();
    this.#sorted = [];
    this.#view = undefined;
    this.dirty = true;
  }

  /** A listing row: taken unless an alert newer than it already arrived. */
  list(entry: ListedEntity): void {
    const known = this.#byName.get(entry.alertName);
    if (known && known.seq >= entry.seq) {
      known.status ??= entry.status;
      return;
    }
    if (known) {
      Object.assign(known, { operationInfo: entry.operationInfo, status: entry.status, seq: entry.seq, version: known.version + 1 });
      this.dirty = true;
      return;
    }
    this.#insert({ ...entry, version: 1 });
  }

  alert(params: AlertParams): void {
    const known = this.#byName.get(params.alertName);
    if (known) {
      if (params.seq <= known.seq) return;
      known.operationInfo = params.operationInfo;
      known.seq = params.seq;
      known.version += 1;
      this.dirty = true;
      return;
    }
    const found = kindOfAlert(this.#kinds, params.alertName);
    if (!found) return;
    this.#insert({ alertName: params.alertName, kind: found.kind.kind, id: found.id, operationInfo: params.operationInfo, seq: params.seq, version: 1 });
  }

  #compare = (a: Entity, b: Entity): number => {
    const order = this.#kindIndex(a.kind) - this.#kindIndex(b.kind);
    return order !== 0 ? order : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  };

  #kindIndex(kind: string): number {
    const index = this.#kinds.findIndex((info) => info.kind === kind);
    return index === -1 ? this.#kinds.length : index;
  }

  #insert(entity: Entity): void {
    this.#byName.set(entity.alertName, entity);
    let low = 0;
    let high = this.#sorted.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.#compare(this.#sorted[middle] as Entity, entity) < 0) low = middle + 1;
      else high = middle;
    }
    this.#sorted.splice(low, 0, entity);
    this.#view = undefined;
    this.dirty = true;
  }

  #resort(): void {
    this.#sorted.sort(this.#compare);
    this.#view = undefined;
    this.dirty = true;
  }
}
