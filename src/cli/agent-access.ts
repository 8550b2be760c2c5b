// How the client commands (call, tasks, watch) reach an agent: WebSocket by default, the bus
// with --nats-url.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, connectBus, type OpstreamClient } from '../index.ts';
import { natsAccessFromEnv } from '../nats/connection.ts';
import { CREDENTIALS_DIR } from './paths.ts';

export type AgentAccess = { url?: string; natsUrl?: string; token?: string };

/**
 * The bearer token: --token, else OPSTREAM_TOKEN, else the local agent's operator token (the
 * person at the agent's own machine is its operator; elsewhere, hand out viewer.token).
 */
export function apiToken(given: string | undefined): string | undefined {
  if (given) return given;
  if (process.env['OPSTREAM_TOKEN']) return process.env['OPSTREAM_TOKEN'];
  const local = join(CREDENTIALS_DIR, 'operator.token');
  return existsSync(local) ? readFileSync(local, 'utf8').trim() : undefined;
}

export const DEFAULT_API_URL = `ws://127.0.0.1:${process.env['OPSTREAM_PORT'] ?? 4040}/rpc`;

export function connectAgent(access: AgentAccess): Promise<OpstreamClient> {
  if (access.natsUrl) return connectBus(access.natsUrl, natsAccessFromEnv());
  return connect(access.url ?? process.env['OPSTREAM_URL'] ?? DEFAULT_API_URL, { reconnect: false, token: apiToken(access.token) });
}

export async function withAgent<T>(access: AgentAccess, use: (client: OpstreamClient) => Promise<T>): Promise<T> {
  const client = await connectAgent(access);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}
