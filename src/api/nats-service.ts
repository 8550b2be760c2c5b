// The same API as the WebSocket one, as request/reply on the bus: a JSON-RPC 2.0 request in the
// body of a NATS request to `opstream.api`, the JSON-RPC response as the reply. The subject lives
// outside `vdsm.>`, so the alert stream never captures API traffic. Agents answer in a queue
// group, so several can serve the same bus.
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { API_QUEUE_GROUP, API_SUBJECT } from '../domain/api-subjects.ts';
import { createLogger } from '../log.ts';
import { Dispatcher } from './dispatcher.ts';
import { createRpcEndpoint } from './json-rpc.ts';
import type { ApiContext } from './method.ts';

const logger = createLogger('api');

export function startNatsApi(
  nc: NatsConnection,
  options: Pick<ApiContext, 'runtime' | 'sim' | 'gluster'>,
): { stop(): Promise<void> } {
  const endpoint = createRpcEndpoint(new Dispatcher());
  const subscription: Subscription = nc.subscribe(API_SUBJECT, {
    queue: API_QUEUE_GROUP,
    callback: (error, message) => {
      if (error) {
        logger.warn('request/reply subscription error', { error: String(error) });
        return;
      }
      void endpoint(message.string(), { runtime: options.runtime, sim: options.sim, gluster: options.gluster })
        .then((reply) => {
          if (reply !== undefined) message.respond(JSON.stringify(reply));
        })
        .catch((failure: unknown) => logger.error('failed to answer a bus request', { error: String(failure) }));
    },
  });
  return {
    async stop() {
      await subscription.drain();
    },
  };
}
