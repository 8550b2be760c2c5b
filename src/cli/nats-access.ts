// How a one-shot command reaches the alert stream: NATS_URL when given; else the embedded server
// if an agent is running it; else the embedded server started just for this command. On the
// embedded server it reads as the generated viewer identity: a read-only command needs no more.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { connect, nkeyAuthenticator } from '@nats-io/transport-node';
import { ensureCredentials, readNkeySeed } from '../security/credentials.ts';
import { historySeal, type HistorySeal } from '../security/history-seal.ts';
import { ensureNatsServer } from '../nats/server-binary.mjs';
import { INBOX_PREFIXES } from '../domain/api-subjects.ts';
import { connectNats, natsAccessFromEnv } from '../nats/connection.ts';
import { EMBEDDED_URL, startEmbeddedServer } from '../nats/embedded-server.ts';
import { CREDENTIALS_DIR, PROJECT_ROOT } from './paths.ts';

export async function withNats<T>(natsUrl: string | undefined, use: (nc: NatsConnection) => Promise<T>): Promise<T> {
  if (natsUrl) return useConnection(await connectNats(natsUrl, 'opstream-cli', { inboxPrefix: INBOX_PREFIXES.viewer, ...natsAccessFromEnv() }), use);
  const viewer = ensureCredentials(CREDENTIALS_DIR).nkeyFiles.viewer;
  const running = await connect({
    servers: EMBEDDED_URL,
    name: 'opstream-cli',
    reconnect: false,
    noAsyncTraces: true,
    authenticator: nkeyAuthenticator(readNkeySeed(viewer)),
    inboxPrefix: INBOX_PREFIXES.viewer,
  }).catch(() => undefined);
  if (running) return useConnection(running, use);
  ensureNatsServer();
  const { url, server } = await startEmbeddedServer(PROJECT_ROOT);
  try {
    return await useConnection(await connectNats(url, 'opstream-cli', { nkeyFile: viewer, inboxPrefix: INBOX_PREFIXES.viewer }), use);
  } finally {
    await server.stop();
  }
}

async function useConnection<T>(nc: NatsConnection, use: (nc: NatsConnection) => Promise<T>): Promise<T> {
  try {
    return await use(nc);
  } finally {
    await nc.drain();
  }
}

/**
 * The key to check seals with, where this machine has it (OPSTREAM_HISTORY_KEY names the file;
 * default the embedded credentials): without it records are checked for their shape only.
 */
export function localHistorySeal(): HistorySeal | undefined {
  const file = process.env['OPSTREAM_HISTORY_KEY'] ?? join(CREDENTIALS_DIR, 'history.key');
  return existsSync(file) ? historySeal(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url')) : undefined;
}
