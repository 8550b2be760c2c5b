// Where the API listens on the bus. Clients need these names, not the agent that serves them, so
// they live in the domain, not beside the server.

/** JSON-RPC requests from operators (managers): every method. */
export const API_SUBJECT = 'opstream.api';
/** JSON-RPC requests from viewers: read methods only. */
export const READ_API_SUBJECT = 'opstream.read';

/** One host's agent alone (not the queue group): where calls for its entities are forwarded. */
export const hostApiSubject = (hostId: string): string => `${API_SUBJECT}.${hostId}`;
/** The read-only API of one host's agent. */
export const hostReadApiSubject = (hostId: string): string => `${READ_API_SUBJECT}.${hostId}`;

/**
 * Where each bus identity receives replies. nats.conf lets an identity subscribe only to its own
 * prefix, so a viewer cannot read a manager's replies; and the agent answers only requests whose
 * reply subject lies under one of these, so no caller can make the agent publish elsewhere.
 */
export const INBOX_PREFIXES = { agent: '_INBOX', manager: '_INBOX_manager', viewer: '_INBOX_viewer' } as const;

/** Whether a request's reply subject is an inbox (and not, say, `$JS.API.STREAM.PURGE.VDSM`). */
export function isInboxSubject(subject: string): boolean {
  return Object.values(INBOX_PREFIXES).some((prefix) => subject.startsWith(`${prefix}.`));
}
/** Queue group the agents answer in, so several can serve the same bus. */
export const API_QUEUE_GROUP = 'opstream-agents';
