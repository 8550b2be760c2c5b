// How the client commands (call, tasks, watch) reach an agent: WebSocket by default, the bus
// with --nats-url.
import { connect, connectBus, type OpstreamClient } from '../index.ts';

export type AgentAccess = { url?: string; natsUrl?: string };

export const DEFAULT_API_URL = `ws://127.0.0.1:${process.env['OPSTREAM_PORT'] ?? 4040}/rpc`;

export function connectAgent(access: AgentAccess): Promise<OpstreamClient> {
  if (access.natsUrl) return connectBus(access.natsUrl);
  return connect(access.url ?? process.env['OPSTREAM_URL'] ?? DEFAULT_API_URL, { reconnect: false });
}

export async function withAgent<T>(access: AgentAccess, use: (client: OpstreamClient) => Promise<T>): Promise<T> {
  const client = await connectAgent(access);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}
