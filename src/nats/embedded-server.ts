import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from './server-process.ts';

/** Where nats.conf's `listen` points; kept in step with the file. */
export const EMBEDDED_URL = 'nats://127.0.0.1:4222';

/**
 * The embedded default: `nats-server -c nats.conf` from the project root, its store under
 * ./data and its log in data/nats-server.log.
 */
export async function startEmbeddedServer(root: string): Promise<{ url: string; server: ServerProcess }> {
  const dataDir = join(root, 'data');
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(dataDir, 'nats-server.log');
  try {
    const server = await startServerProcess(['-c', join(root, 'nats.conf')], { cwd: root, logFile });
    return { url: EMBEDDED_URL, server };
  } catch (error) {
    throw new Error(
      `could not start the embedded nats-server (is port 4222 taken? set NATS_URL to use a running server): ${String(error)}`,
      { cause: error },
    );
  }
}
