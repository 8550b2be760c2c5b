// The agent process: NATS (embedded unless NATS_URL names one), the alert stream, the runtime
// with its driver, and the API. Stopping reverses the order so nothing is cut off mid-write.
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { CompositeDriver } from '../actors/drivers/composite-driver.ts';
import { GlusterDriver } from '../actors/drivers/gluster-driver.ts';
import { QemuImageDriver } from '../actors/drivers/qemu-image-driver.ts';
import { SimulatedGluster, type SimulatedGlusterOptions } from '../actors/drivers/simulated-gluster.ts';
import { TcpConnectionDriver } from '../actors/drivers/tcp-connection-driver.ts';
import { EntityKinds } from './domain/subjects.ts';
import { SimulatedDriver, type SimulatedDriverOptions } from '../actors/drivers/simulated-driver.ts';
import { Runtime } from '../actors/runtime.ts';
import { SnapshotStore } from '../actors/snapshot-store.ts';
import { startNatsApi } from './api/nats-service.ts';
import { startApiServer, type ApiServer } from './api/ws-server.ts';
import { createLogger } from './log.ts';
import { DEFAULT_STREAM, ensureAlertStream } from './nats/alert-stream.ts';
import { connectNats } from './nats/connection.ts';
import { startEmbeddedServer } from './nats/embedded-server.ts';
import type { ServerProcess } from './nats/server-process.ts';

const logger = createLogger('agent');

export type AgentOptions = {
  /** A running server's URL; without it the embedded default starts from `<root>/nats.conf`. */
  natsUrl?: string;
  /** The project root, where nats.conf and data/ live (embedded default only). */
  root: string;
  /** API port; 0 picks a free one. */
  port?: number;
  stream?: string;
  replicas?: number;
  sim?: SimulatedDriverOptions;
  /** Snapshot every N alerts per entity (and at a clean shutdown); 0 turns snapshots off. */
  snapshotEvery?: number;
  /** Images as qcow2 files worked by qemu-img (`qemu`), or simulated (`sim`, the default). */
  imageDriver?: 'sim' | 'qemu';
  /** Where the qemu driver keeps image files; default `<root>/data/images`. */
  imageDir?: string;
  gluster?: SimulatedGlusterOptions & { pollMs?: number };
  /** How long ended jobs and tasks stay visible (and retries idempotent); default one hour. */
  jobRetentionMs?: number;
  /** Per work kind, how long a driver may report nothing before the operation fails as stalled. */
  stallTimeouts?: Record<string, number>;
  /** The same for every other work kind; default 10 minutes. */
  defaultStallMs?: number;
};

export type Agent = {
  natsUrl: string;
  api: ApiServer;
  runtime: Runtime;
  sim: SimulatedDriver;
  gluster: SimulatedGluster;
  /** Present with `imageDriver: 'qemu'`. */
  images?: QemuImageDriver;
  nc: NatsConnection;
  stop(): Promise<void>;
};

export async function startAgent(options: AgentOptions): Promise<Agent> {
  let embedded: ServerProcess | undefined;
  let natsUrl = options.natsUrl;
  if (!natsUrl) {
    const started = await startEmbeddedServer(options.root);
    embedded = started.server;
    natsUrl = started.url;
    logger.info('embedded nats-server ready', { url: natsUrl, store: 'data/jetstream' });
  }
  const nc = await connectNats(natsUrl, 'opstream-agent');
  const stream = await ensureAlertStream(nc, { name: options.stream ?? DEFAULT_STREAM, replicas: options.replicas });
  const sim = new SimulatedDriver(options.sim);
  const gluster = new SimulatedGluster(options.gluster);
  const images = options.imageDriver === 'qemu' ? new QemuImageDriver({ imageDir: options.imageDir ?? join(options.root, 'data', 'images') }) : undefined;
  const driver = new CompositeDriver({
    [EntityKinds.VM]: sim,
    [EntityKinds.Image]: images ?? sim,
    [EntityKinds.StorageConnection]: new TcpConnectionDriver(),
    [EntityKinds.GlusterVolume]: new GlusterDriver(gluster, { pollMs: options.gluster?.pollMs }),
  });
  const snapshotEvery = options.snapshotEvery ?? 50;
  const snapshots = snapshotEvery > 0 ? await SnapshotStore.open(nc, logger, { replicas: options.replicas }) : undefined;
  const { jobRetentionMs, stallTimeouts, defaultStallMs } = options;
  const runtime = await Runtime.start({ nc, stream, driver, snapshots, snapshotEvery, jobRetentionMs, stallTimeouts, defaultStallMs });
  // The API answers from the start — /healthz says 503 and calls say Unavailable until recovery
  // is done — so a long recovery is visible instead of looking like a dead port.
  const api = await startApiServer({
    runtime,
    sim,
    gluster,
    port: options.port ?? 4040,
    ready: () => runtime.recovered && !nc.isClosed(),
  });
  await runtime.recover();
  const busApi = startNatsApi(nc, { runtime, sim, gluster });
  return {
    natsUrl,
    api,
    runtime,
    sim,
    gluster,
    images,
    nc,
    async stop() {
      await busApi.stop();
      await api.close();
      await runtime.stop();
      await nc.drain();
      await embedded?.stop();
    },
  };
}
