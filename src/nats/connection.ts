// Connections to NATS: who connects (an nkey identity), how the server is checked (TLS CA), where
// replies come back, and reconnecting for as long as it takes.
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { readNkeySeed } from '../security/credentials.ts';

/** Who connects and how the server is checked: an nkey seed file, and a CA for TLS servers. */
export type NatsAccess = {
  /** A NATS user nkey seed file (data/credentials/<identity>.nk); env OPSTREAM_NATS_NKEY. */
  nkeyFile?: string;
  /** CA certificate that signed the server's TLS certificate (tls:// URLs); env OPSTREAM_NATS_CA. */
  caFile?: string;
  /** Where replies come back: each identity may only read its own (see INBOX_PREFIXES). */
  inboxPrefix?: string;
};

/** NatsAccess from the environment, for commands given only a URL. */
export function natsAccessFromEnv(): NatsAccess {
  return { nkeyFile: process.env['OPSTREAM_NATS_NKEY'], caFile: process.env['OPSTREAM_NATS_CA'] };
}

/**
 * A connection that keeps reconnecting: the agent outlives short server restarts. Async traces
 * are off because they build an Error per request — the largest cost on the write path.
 */
export async function connectNats(url: string, name: string, access: NatsAccess = {}): Promise<NatsConnection> {
  return connect({
    servers: url.split(','),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    noAsyncTraces: true,
    ...(access.nkeyFile ? { authenticator: nkeyAuthenticator(readNkeySeed(access.nkeyFile)) } : {}),
    ...(access.caFile ? { tls: { caFile: access.caFile } } : {}),
    ...(access.inboxPrefix ? { inboxPrefix: access.inboxPrefix } : {}),
  });
}
