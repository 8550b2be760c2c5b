// The same API as the WebSocket one, as request/reply on the bus: a JSON-RPC 2.0 request in the
// body of a NATS request, the JSON-RPC response as the reply. The caller's NATS identity decides
// its role through the subject nats.conf lets it publish to: `opstream.api` (operators: managers)
// or `opstream.read` (viewers, read methods only). Both live outside `vdsm.>`, so the alert stream
// never captures API traffic. Agents answer in a queue group, so several can serve the same bus.
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { createJSONRPCErrorResponse } from 'json-rpc-2.0';
import { API_QUEUE_GROUP, API_SUBJECT, hostApiSubject, hostReadApiSubject, isInboxSubject, READ_API_SUBJECT } from '../domain/api-subjects.ts';
import { FORWARDED_HEADER } from '../fleet/forward.ts';
import { ErrorCodes } from '../domain/errors.ts';
import { createLogger } from '../log.ts';
import { apiMethods, Dispatcher } from './dispatcher.ts';
import { createRpcEndpoint, refuseFrame, type Reply } from './json-rpc.ts';
import type { AgentServices } from './method.ts';
import type { Role } from './roles.ts';

const logger = createLogger('api');

/**
 * Bus requests this agent works on at once, from every caller together. A NATS subscription
 * cannot be paused the way a WebSocket is read no further, so a request beyond it is answered
 * LimitExceeded at once instead of starting work nobody bounds.
 */
export const MAX_BUS_REQUESTS_IN_FLIGHT = 1024;

export function startNatsApi(nc: NatsConnection, services: AgentServices, options: { maxInFlight?: number } = {}): { stop(): Promise<void> } {
  const maxInFlight = options.maxInFlight ?? MAX_BUS_REQUESTS_IN_FLIGHT;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`the bus requests in flight must be a whole number, 1 or more (got ${maxInFlight})`);
  let inFlight = 0;
  const hostId = services.fleet?.hostId;
  const endpoint = createRpcEndpoint(new Dispatcher(apiMethods(services)));
  // The shared subjects go to any one agent of the queue group; `.<hostId>` ones to this one only.
  const serve = (subject: string, role: Role, queue?: string): Subscription =>
    nc.subscribe(subject, {
      ...(queue ? { queue } : {}),
      callback: (error, message) => {
        if (error) {
          logger.warn('request/reply subscription error', { subject, error: String(error) });
          return;
        }
        // A request that could not be answered is not run either: its effects would be blind.
        if (message.reply && !isInboxSubject(message.reply)) {
          logger.warn('ignoring a request whose reply subject is not an inbox', { subject, reply: message.reply.slice(0, 200) });
          return;
        }
        const text = message.string();
        if (inFlight >= maxInFlight) {
          const why = `${hostId ? `host ${hostId}'s agent` : 'this agent'} is working on ${inFlight} bus requests, the most it takes at once; retry shortly`;
          void refuseFrame(text, ErrorCodes.LimitExceeded, why)
            .then((reply) => respond(nc, message, reply))
            .catch((failure: unknown) => logger.warn('could not refuse a bus request', { error: String(failure) }));
          return;
        }
        inFlight += 1;
        const forwarded = message.headers?.get(FORWARDED_HEADER) ? true : undefined;
        void endpoint(text, { ...services, role, ...(forwarded ? { forwarded } : {}) })
          .then((reply) => respond(nc, message, reply))
          .catch((failure: unknown) => logger.error('failed to answer a bus request', { error: String(failure) }))
          .finally(() => (inFlight -= 1));
      },
    });
  const subscriptions = [serve(API_SUBJECT, 'operator', API_QUEUE_GROUP), serve(READ_API_SUBJECT, 'viewer', API_QUEUE_GROUP)];
  if (hostId) subscriptions.push(serve(hostApiSubject(hostId), 'operator'), serve(hostReadApiSubject(hostId), 'viewer'));
  return {
    async stop() {
      await Promise.allSettled(subscriptions.map((subscription) => subscription.drain()));
    },
  };
}

/**
 * Replies, unless the request was a notification; a reply the bus cannot carry becomes an error.
 * The reply is published with the agent's rights, so it goes only to an inbox: a caller that names
 * `$JS.API.STREAM.PURGE.VDSM` or `vdsm.VM.x` as its reply subject gets nothing, not our hands.
 */
function respond(nc: NatsConnection, message: Msg, reply: Reply): void {
  if (reply === undefined || !message.reply) return;
  if (!isInboxSubject(message.reply)) {
    logger.warn('refusing to answer a request whose reply subject is not an inbox', { reply: message.reply.slice(0, 200) });
    return;
  }
  const text = JSON.stringify(reply);
  const limit = nc.info?.max_payload ?? Number.POSITIVE_INFINITY;
  if (Buffer.byteLength(text) <= limit) {
    message.respond(text);
    return;
  }
  const why = `the reply is ${Buffer.byteLength(text)} bytes; the bus carries at most ${limit}: narrow the request`;
  const ids = Array.isArray(reply) ? reply.map((item) => item.id) : [reply.id];
  const tooLarge = ids.map((id) => createJSONRPCErrorResponse(id ?? null, ErrorCodes.PayloadTooLarge, why));
  const answer = JSON.stringify(Array.isArray(reply) ? tooLarge : tooLarge[0]);
  // An error per request of a batch can itself be too large (long ids): then one error for it all.
  message.respond(Buffer.byteLength(answer) <= limit ? answer : JSON.stringify(createJSONRPCErrorResponse(null, ErrorCodes.PayloadTooLarge, why)));
}
