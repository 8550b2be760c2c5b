import { connect, type NatsConnection } from '@nats-io/transport-node';

/** A connection that keeps reconnecting: the agent outlives short server restarts. */
export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  return connect({
    servers: url.split(','),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
  });
}
