// How a one-shot command reaches the alert stream: NATS_URL when given; else the embedded server
// if an agent is running it; else the embedded server started just for this command.
import type { NatsConnection } from '@nats-io/transport-node';
import { connect } from '@nats-io/transport-node';
import { ensureNatsServer } from '../nats/server-binary.mjs';
import { connectNats } from '../nats/connection.ts';
import { EMBEDDED_URL, startEmbeddedServer } from '../nats/embedded-server.ts';
import { PROJECT_ROOT } from './paths.ts';

export async function withNats<T>(natsUrl: string | undefined, use: (nc: NatsConnection) => Promise<T>): Promise<T> {
  if (natsUrl) return useConnection(await connectNats(natsUrl, 'opstream-cli'), use);
  const running = await connect({ servers: EMBEDDED_URL, name: 'opstream-cli', reconnect: false, noAsyncTraces: true }).catch(() => undefined);
  if (running) return useConnection(running, use);
  ensureNatsServer();
  const { url, server } = await startEmbeddedServer(PROJECT_ROOT);
  try {
    return await useConnection(await connectNats(url, 'opstream-cli'), use);
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
