import { z } from 'zod';
import { ErrorCodes, OpstreamError } from './errors.ts';

/** Every alert subject starts with this token; nothing else may live under it. */
export const ALERT_ROOT = 'vdsm';

/** The subject path of each entity kind, between `vdsm.` and the object id. */
export const EntityKinds = {
  VM: 'VM',
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

/**
 * The one `kind.id` key of an entity: maps of entities are keyed by it, and its alert subject is
 * `vdsm.<key>`.
 */
export function entityKey(ref: EntityRef): string {
  return `${ref.kind}.${ref.id}`;
}

export function alertSubject(kind: EntityKind, id: string): string {
  return `${ALERT_ROOT}.${entityKey({ kind, id })}`;
}

/** The kind and id of an alert subject, or undefined when it is not one. */
export function parseAlertSubject(subject: string): { kind: EntityKind; id: string } | undefined {
  for (const kind of ENTITY_KINDS) {
    const prefix = `${ALERT_ROOT}.${kind}.`;
    if (subject.startsWith(prefix)) {
      const id = subject.slice(prefix.length);
      return EntityId.safeParse(id).success ? { kind, id } : undefined;
    }
  }
  return undefined;
}
