// Calls that reach an agent which does not own their entity go on to the owner's agent over the
// bus (`opstream.api.<hostId>`), and its answer — result or error — comes back as if the call had
// been made there. A forwarded call is marked, so it is never forwarded a second time: ownership
// that moved in between is answered Unavailable, and the caller retries.
import { errors, headers, type NatsConnection } from '@nats-io/transport-node';
import { hostApiSubject } from '../domain/api-subjects.ts';
import { ErrorCodes, OpstreamError, type ErrorCode } from '../domain/errors.ts';

/** Marks a request one agent forwarded to another; its value names the forwarding host. */
export const FORWARDED_HEADER = 'Opstream-Forwarded-By';
/** How long a forwarded call may take: the owner answers once its transition is durable. */
export const FORWARD_TIMEOUT_MS = 15_000;
/**
 * Forwards held open at once. Each waits up to FORWARD_TIMEOUT_MS for an owner that may be slow or
 * gone, so callers flooding calls for entities owned elsewhere would otherwise pile them up here.
 */
export const MAX_FORWARDS_IN_FLIGHT = 512;

type RpcReply = { result?: unknown; error?: { code: number; message: string; data?: Record<string, unknown> } };

export type CallForwarder = (hostId: string, method: string, params: unknown) => Promise<unknown>;

export function callForwarder(nc: NatsConnection, fromHost: string, options: { maxInFlight?: number } = {}): CallForwarder {
  const maxInFlight = options.maxInFlight ?? MAX_FORWARDS_IN_FLIGHT;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`the forwards in flight must be a whole number, 1 or more (got ${maxInFlight})`);
  let inFlight = 0;
  return async (hostId, method, params) => {
    if (inFlight >= maxInFlight) {
      throw new OpstreamError(
        ErrorCodes.LimitExceeded,
        `${method}: this agent is already forwarding ${inFlight} calls to the agents that own their entities, the most it holds open; retry shortly`,
        { hostId, limit: maxInFlight },
      );
    }
    inFlight += 1;
    try {
      return await forward(hostId, method, params);
    } finally {
      inFlight -= 1;
    }
  };

  async function forward(hostId: string, method: string, params: unknown): Promise<unknown> {
    const marked = headers();
    marked.set(FORWARDED_HEADER, fromHost);
    const request = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: params ?? {} });
    let reply: RpcReply;
    try {
      reply = (await nc.request(hostApiSubject(hostId), request, { timeout: FORWARD_TIMEOUT_MS, headers: marked })).json<RpcReply>();
    } catch (error) {
      const noResponders = error instanceof errors.RequestError && error.isNoResponders();
      const why = noResponders ? 'no agent answers for it' : (error as Error).message;
      throw new OpstreamError(ErrorCodes.Unavailable, `${method}: host ${hostId}'s agent could not be reached (${why}); the outcome is unknown if it was a change — check with getInfo`, { hostId }, { cause: error });
    }
    if (reply.error) throw new OpstreamError(reply.error.code as ErrorCode, reply.error.message, reply.error.data);
    return reply.result;
  }
}
