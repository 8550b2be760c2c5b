// Alert names: each entity kind's subject shape under `vdsm.`, the ids that can be a subject token, and
// the one key an entity is known by.
import { z } from 'zod';
import { ErrorCodes, OpstreamError } from './errors.ts';

/** Every alert subject starts with this token; nothing else may live under it. */
export const ALERT_ROOT = 'vdsm';

/**
 * The name of each entity kind. For a top-level object it is also the subject path between
 * `vdsm.` and the object id; a sub-object kind (`VM.Disk`) names its parent's path and its own
 * type, and its alerts sit under its parent's: see KIND_SUBJECTS.
 */
export const EntityKinds = {
  VM: 'VM',
  /** A VM's disk: `vdsm.VM.<vmId>.Disk.<diskId>`, the storage side of the VM's operations. */
  VMDisk: 'VM.Disk',
  Image: 'Storage.Image',
  StorageConnection: 'Storage.Connection',
  GlusterVolume: 'Gluster.Volume',
  /** Composite jobs (Host.prepareForMaintenance): the job is an actor on the stream too. */
  Job: 'Job',
} as const;
export type EntityKind = (typeof EntityKinds)[keyof typeof EntityKinds];
export const ENTITY_KINDS: readonly EntityKind[] = Object.values(EntityKinds);

export const MAX_ID_LENGTH = 128;
// Whitespace, controls and NATS' own syntax (token separator and wildcards) cannot be in a token.
const FORBIDDEN_ID_CHARACTER = /[.*>\s\p{Cc}]/u;

/** An object id, which becomes one subject token. */
export const EntityId = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .min(1, { error: 'must not be empty' })
  .max(MAX_ID_LENGTH, { error: `must be at most ${MAX_ID_LENGTH} characters` })
  // A lone surrogate is not text: NATS would carry it as U+FFFD, folding distinct ids onto one subject.
  .refine((id) => id.isWellFormed(), { error: 'must be well-formed Unicode text (it holds a lone surrogate)' })
  .refine((id) => !FORBIDDEN_ID_CHARACTER.test(id), {
    error: "must not contain '.', '*', '>', whitespace or control characters",
  });

/** Throws a clear InvalidParams error naming the field when `id` cannot be a subject token. */
export function assertEntityId(id: unknown, field = 'id'): asserts id is string {
  const result = EntityId.safeParse(id);
  if (!result.success) {
    const reason = result.error.issues.map((issue) => issue.message).join('; ');
    throw new OpstreamError(ErrorCodes.InvalidParams, `invalid ${field} ${JSON.stringify(id)}: ${reason}`);
  }
}

/** Which entity: its kind and its id. */
export type EntityRef = { kind: EntityKind; id: string };

/** The one `kind.id` key of an entity: maps of entities are keyed by it. */
export function entityKey(ref: EntityRef): string {
  return `${ref.kind}.${ref.id}`;
}

/**
 * The seed's alert names are `<subsystem>(.<objectType>)?.<object>.(<subobject>., …)`: each kind's
 * subject after `vdsm.`, with `*` where an object id stands. Every kind has a fixed number of
 * tokens and its own literal tokens, so a subject parses to at most one kind, and ids (which hold
 * no `.`) cannot shift one shape into another.
 */
export const KIND_SUBJECTS: Record<EntityKind, string> = {
  [EntityKinds.VM]: 'VM.*',
  [EntityKinds.VMDisk]: 'VM.*.Disk.*',
  [EntityKinds.Image]: 'Storage.Image.*',
  [EntityKinds.StorageConnection]: 'Storage.Connection.*',
  [EntityKinds.GlusterVolume]: 'Gluster.Volume.*',
  [EntityKinds.Job]: 'Job.*',
};

const ID_TOKEN = '*';
/** Each kind's subject tokens, split once: alertSubject runs for every entity a restart loads. */
const KIND_TOKENS = new Map<string, readonly string[]>(
  Object.entries(KIND_SUBJECTS).map(([kind, subject]) => [kind, Object.freeze([ALERT_ROOT, ...subject.split('.')])]),
);
const ID_SLOTS = new Map<string, number>([...KIND_TOKENS].map(([kind, tokens]) => [kind, tokens.filter((token) => token === ID_TOKEN).length]));
const kindTokens = (kind: EntityKind): readonly string[] => KIND_TOKENS.get(kind) ?? [];

/** The NATS subject of every alert of `kind` (`vdsm.VM.*.Disk.*`). */
export function kindSubjectPattern(kind: EntityKind): string {
  return kindTokens(kind).join('.');
}

/** The subject's tokens: literal ones, and `*` where an id stands (what filters narrow against). */
export function kindSubjectTokens(kind: EntityKind): readonly string[] {
  return kindTokens(kind);
}

/** How the kind's alert names look, for messages (`vdsm.VM.<id>.Disk.<id>`). */
export function kindSubjectShape(kind: EntityKind): string {
  return kindTokens(kind)
    .map((token) => (token === ID_TOKEN ? '<id>' : token))
    .join('.');
}

/**
 * The entity id of a sub-object: its parent's id and its own, joined by `.` (which no id holds,
 * so the parts come back apart unambiguously). A disk `d1` of VM `web` is entity `web.d1`.
 */
export function subObjectId(...ids: string[]): string {
  return ids.join('.');
}

/** The kind each sub-object kind lives under: the first part of its id is its parent's id. */
const PARENT_KINDS: Partial<Record<EntityKind, EntityKind>> = { [EntityKinds.VMDisk]: EntityKinds.VM };

/** Whether entities of `kind` are sub-objects (a VM's disk): they go where their parent goes. */
export function isSubObjectKind(kind: EntityKind): boolean {
  return PARENT_KINDS[kind] !== undefined;
}

/** The entity a sub-object belongs to (a disk's VM), or undefined for an object of its own. */
export function parentOf(ref: { kind: EntityKind; id: string }): { kind: EntityKind; id: string } | undefined {
  const kind = PARENT_KINDS[ref.kind];
  return kind === undefined ? undefined : { kind, id: ref.id.split('.')[0] as string };
}

export function alertSubject(kind: EntityKind, id: string): string {
  const ids = id.split('.');
  const tokens = kindTokens(kind);
  const slots = ID_SLOTS.get(kind) ?? 0;
  // A programming error, not input: ids are validated where they enter.
  if (ids.length !== slots) throw new Error(`entity id ${JSON.stringify(id)} does not fit ${kindSubjectShape(kind)}`);
  let next = 0;
  return tokens.map((token) => (token === ID_TOKEN ? ids[next++] : token)).join('.');
}

/** The kind and id of an alert subject, or undefined when it is not one. */
export function parseAlertSubject(subject: string): { kind: EntityKind; id: string } | undefined {
  const tokens = subject.split('.');
  for (const kind of ENTITY_KINDS) {
    const shape = kindTokens(kind);
    if (shape.length !== tokens.length) continue;
    const ids: string[] = [];
    const fits = shape.every((expected, i) => {
      const token = tokens[i] as string;
      if (expected !== ID_TOKEN) return token === expected;
      ids.push(token);
      return EntityId.safeParse(token).success;
    });
    if (fits) return { kind, id: subObjectId(...ids) };
  }
  return undefined;
}
