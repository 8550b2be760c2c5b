// An agent's parts wired to a test server: a connection, the alert stream and a runtime whose
// simulated driver ticks in milliseconds.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureCredentials } from '../../src/security/credentials.ts';
import { historySeal } from '../../src/security/history-seal.ts';
import { SimulatedDriver, type SimulatedDriverOptions } from '../../actors/drivers/simulated-driver.ts';
import { Runtime, type RuntimeOptions } from '../../actors/runtime.ts';
import { ensureAlertStream } from '../../src/nats/alert-stream.ts';
import { connectNats } from '../../src/nats/connection.ts';
import { startAgent, type Agent } from '../../src/agent.ts';

export type TestAgent = {
  nc: NatsConnection;
  runtime: Runtime;
  driver: SimulatedDriver;
  stream: string;
  /** The key its records are sealed with, as a file (OPSTREAM_HISTORY_KEY for the CLI). */
  historyKeyFile: string;
  close(): Promise<void>;
};

let installation: string | undefined;
/** One test file is one installation: its agents share a history key, as a fleet's agents do. */
function installationCredentials() {
  installation ??= mkdtempSync(join(tmpdir(), 'opstream-credentials-'));
  return ensureCredentials(installation);
}

export async function startTestAgent(
  url: string,
  driverOptions: SimulatedDriverOptions = { stepMs: 5 },
  runtimeOptions: Partial<Omit<RuntimeOptions, 'nc' | 'stream' | 'driver'>> = {},
): Promise<TestAgent> {
  const credentials = installationCredentials();
  const nc = await connectNats(url, 'test-agent');
  const stream = await ensureAlertStream(nc);
  const driver = new SimulatedDriver(driverOptions);
  const runtime = await Runtime.start({ nc, stream, driver, seal: historySeal(credentials.historyKey), ...runtimeOptions });
  return {
    nc,
    runtime,
    driver,
    stream,
    historyKeyFile: join(credentials.dir, 'history.key'),
    async close() {
      await runtime.stop();
      await nc.drain();
    },
  };
}

/** A whole agent (API, bus service, fleet lease) on a test cluster, its stream and buckets at replicas 3. */
export function startClusterAgent(natsUrl: string): Promise<Agent> {
  return startAgent({
    natsUrl,
    root: process.cwd(),
    port: 0,
    replicas: 3,
    sim: { stepMs: 5 },
    credentialsDir: mkdtempSync(join(tmpdir(), 'opstream-credentials-')),
  });
}

let counter = 0;
/** A VM id unique within the test run, so tests in one file never share an entity. */
export function uniqueId(prefix = 'vm'): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}
