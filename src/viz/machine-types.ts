// The shape of a machine as the visualizer draws it: states, nesting, transitions labelled with
// their events, and each state's meta. Plain JSON, shared by the API (Machine.describe), the CLI
// exporters and the browser page, so it imports nothing.

/** One transition of one state, as declared in the machine. */
export type TransitionDescription = {
  event: string;
  /** Paths of the target states (`Up`, `MigrationSource.copyingMemory`); empty when targetless. */
  targets: string[];
  /**
   * `external`: moves to its targets; `internal`: runs actions and stays (progress);
   * `forbidden`: neither — the state refuses the event (XState's `EVENT: {}`).
   */
  kind: 'external' | 'internal' | 'forbidden';
  /** Action names (the `type` of parameterised actions). */
  actions: string[];
  guard?: string;
};

export type StateType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

export type StateDescription = {
  key: string;
  /** Dotted path from the root (`MigrationSource.configuring`); '' for the root itself. */
  path: string;
  type: StateType;
  /** Path of the initial child of a compound state. */
  initial?: string;
  /** The state's XState meta as declared: status, operation, work, onResume, cancel, ... */
  meta: Record<string, unknown> | null;
  description?: string;
  transitions: TransitionDescription[];
  states: StateDescription[];
};

export type MachineDescription = {
  /** The entity kind's subject path (`VM`, `Storage.Image`). */
  kind: string;
  /** Alert names of this kind start with this (`vdsm.VM.`; a VM's disks' too: see alertPattern). */
  alertPrefix: string;
  /** The NATS subject of every alert of this kind, `*` where an id stands (`vdsm.VM.*.Disk.*`). */
  alertPattern: string;
  /** The XState machine id and the version recorded in every alert. */
  id: string;
  version: number;
  root: StateDescription;
};

/** A state value as alerts record it. */
export type StateValueLike = string | { [region: string]: StateValueLike };

/** Every state path a state value makes active, parents before children. */
export function activePaths(value: StateValueLike | null | undefined, prefix = ''): string[] {
  if (value === null || value === undefined) return [];
  const join = (key: string) => (prefix ? `${prefix}.${key}` : key);
  if (typeof value === 'string') return [join(value)];
  return Object.entries(value).flatMap(([key, inner]) => [join(key), ...activePaths(inner, join(key))]);
}

/** What the diagram prints about a state: its VDSM status, resume and cancel policies. */
export function policyOf(meta: Record<string, unknown> | null): { status?: string; onResume?: string; cancel?: string; work?: string } {
  if (!meta) return {};
  const text = (value: unknown): string | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string') return value;
    if (typeof value === 'object') {
      // A cancel policy may be an object such as { policy: 'refuse', reason: '...' }.
      const record = value as Record<string, unknown>;
      const head = record['policy'] ?? record['mode'] ?? record['kind'] ?? record['type'];
      if (typeof head === 'string') return head;
    }
    return JSON.stringify(value);
  };
  return { status: text(meta['status']), onResume: text(meta['onResume']), cancel: text(meta['cancel']), work: text(meta['work']) };
}
