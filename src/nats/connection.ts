import { connect, type NatsConnection } from '@nats-io/transport-node';

/**
 * A connection that keeps reconnecting: the agent outlives short server restarts. Async traces
 * are off because they build an Error per request — the largest cost on the write path.
 */
export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  return connect({
    servers: url.split(','),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    noAsyncTraces: true,
  });
}
