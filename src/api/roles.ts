// Who may call what. A viewer reads (subscribe, getInfo, running tasks, replay reads); an operator
// may also change things. On the WebSocket the bearer token decides the role; on the bus the
// caller's NATS identity does, through the subject nats.conf lets it publish to.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MethodAccess } from './method.ts';

export const ROLES = ['viewer', 'operator'] as const;
export type Role = (typeof ROLES)[number];

/** The role a method needs. */
export const roleFor = (access: MethodAccess): Role => (access === 'read' ? 'viewer' : 'operator');

export const mayCall = (role: Role, access: MethodAccess): boolean => role === 'operator' || access === 'read';

export type ApiTokens = Record<Role, string>;

const digest = (text: string) => createHash('sha256').update(text).digest();

/** The role a bearer token grants, compared in constant time; undefined for any other token. */
export function roleOfToken(tokens: ApiTokens, given: string | undefined): Role | undefined {
  if (!given) return undefined;
  const presented = digest(given);
  // Both compared every time, so timing does not tell which role a near-miss was close to.
  const operator = timingSafeEqual(presented, digest(tokens.operator));
  const viewer = timingSafeEqual(presented, digest(tokens.viewer));
  return operator ? 'operator' : viewer ? 'viewer' : undefined;
}
