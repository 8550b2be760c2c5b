// The embedded default: nats-server from nats.conf, its store and credentials under ./data.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../log.ts';
import { ensureCredentials } from '../security/credentials.ts';
import { startServerProcess, type ServerProcess } from './server-process.ts';

const logger = createLogger('nats');

/** Where nats.conf's `listen` points; kept in step with the file. */
export const EMBEDDED_URL = 'nats://127.0.0.1:4222';

/**
 * The embedded default: `nats-server -c nats.conf` from the project root, its store under
 * ./data and its log in data/nats-server.log. It runs in its own process group so that Ctrl-C
 * reaches the agent first and the agent stops the server after draining; a pid file lets the
 * next start clean up a server left behind by an agent that was killed outright.
 */
export async function startEmbeddedServer(root: string): Promise<{ url: string; server: ServerProcess }> {
  const dataDir = join(root, 'data');
  mkdirSync(dataDir, { recursive: true });
  // nats.conf includes the identities' public keys: they must exist before the server starts.
  ensureCredentials(join(dataDir, 'credentials'));
  const pidFile = join(dataDir, 'nats-server.pid');
  await stopLeftover(pidFile);
  let server: ServerProcess;
  try {
    server = await startServerProcess(['-c', join(root, 'nats.conf')], {
      cwd: root,
      logFile: join(dataDir, 'nats-server.log'),
      detached: true,
    });
  } catch (error) {
    throw new Error(
      `could not start the embedded nats-server (is port 4222 taken? set NATS_URL to use a running server): ${String(error)}`,
      { cause: error },
    );
  }
  writeFileSync(pidFile, String(server.pid));
  void server.exited.then(() => rmSync(pidFile, { force: true }));
  return { url: EMBEDDED_URL, server };
}

async function stopLeftover(pidFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  rmSync(pidFile, { force: true });
  if (!Number.isInteger(pid) || pid <= 0 || !isNatsServer(pid)) return;
  logger.warn('stopping a nats-server left behind by an earlier run', { pid });
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < 10_000 && isNatsServer(pid); waited += 100) await sleep(100);
}

function isNatsServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('nats-server');
  } catch {
    return false;
  }
}
