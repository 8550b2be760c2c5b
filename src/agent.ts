// The agent process: its credentials, NATS (embedded unless NATS_URL names one), the alert
// stream, the runtime with its driver, and the API. Stopping reverses the order so nothing is
// cut off mid-write.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CompositeDriver } from '../actors/drivers/composite-driver.ts';
import { GlusterDriver } from '../actors/drivers/gluster-driver.ts';
import { QemuImageDriver } from '../actors/drivers/qemu-image-driver.ts';
import { QemuVmDriver, type QemuVmDriverOptions } from '../actors/drivers/qemu-vm-driver.ts';
import { SimulatedGluster, type SimulatedGlusterOptions } from '../actors/drivers/simulated-gluster.ts';
import { TcpConnectionDriver } from '../actors/drivers/tcp-connection-driver.ts';
import { assertEntityId, EntityKinds } from './domain/subjects.ts';
import { SimulatedDriver, type SimulatedDriverOptions } from '../actors/drivers/simulated-driver.ts';
import { Runtime } from '../actors/runtime.ts';
import { SnapshotStore } from '../actors/snapshot-store.ts';
import { startNatsApi } from './api/nats-service.ts';
import { startApiServer, type ApiServer } from './api/ws-server.ts';
import { createLogger } from './log.ts';
import { DEFAULT_STREAM, ensureAlertStream } from './nats/alert-stream.ts';
import { connectNats, type NatsAccess } from './nats/connection.ts';
import { untilReachable } from './nats/errors.ts';
import type { ApiTokens } from './api/roles.ts';
import { storageAllowList } from './api/storage-allow-list.ts';
import { ensureCredentials, unsealedThrough, type Credentials } from './security/credentials.ts';
import { lastStreamSequence } from './subscriptions/alert-feed.ts';
import { AlertFanout } from './subscriptions/fanout.ts';
import { historySeal } from './security/history-seal.ts';
import { startEmbeddedServer } from './nats/embedded-server.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { callForwarder } from './fleet/forward.ts';
import { DEFAULT_HOSTS_BUCKET, DEFAULT_LEASE_MS, FleetMembership } from './fleet/membership.ts';
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
  /** Where credentials are generated and read; default `<root>/data/credentials`. */
  credentialsDir?: string;
  /** API tokens of the agent's own, instead of the generated operator.token / viewer.token. */
  tokens?: Partial<ApiTokens>;
  /** How to authenticate to NATS_URL (the embedded server uses the generated agent identity). */
  natsAccess?: NatsAccess;
  /** Storage servers StorageConnection.connect may reach: `host` or `host:port`. */
  storageAllow?: readonly string[];
  /** Browser origins allowed to use the API besides its own. */
  allowedOrigins?: readonly string[];
  /** Serve the API over TLS with these PEM files. */
  tls?: { certFile: string; keyFile: string };
  /** VMs as QEMU processes over QMP (`qemu`), or simulated (`sim`, the default). */
  vmDriver?: 'sim' | 'qemu';
  /** Where the qemu driver keeps each VM's QMP socket and files; default `<root>/data/vms`. */
  vmDir?: string;
  /** Further qemu VM driver settings (bandwidth cap, accelerator, extra QEMU arguments). */
  qemu?: Partial<Omit<QemuVmDriverOptions, 'vmDir' | 'hostId' | 'imagePath'>>;
  /** This host's id on the bus (`opstream.internal.<hostId>.>`); default the host name. */
  hostId?: string;
  /** Host liveness: how often this agent renews its lease, and how long a silent host keeps its own. */
  fleet?: { heartbeatMs?: number; leaseMs?: number };
  /** How long ended jobs and tasks stay visible (and retries idempotent); default one hour. */
  jobRetentionMs?: number;
  /** Per work kind, how long a driver may report nothing before the operation fails as stalled. */
  stallTimeouts?: Record<string, number>;
  /** The same for every other work kind; default 10 minutes. */
  defaultStallMs?: number;
  /**
   * Work held open for callers at once: bus requests (default MAX_BUS_REQUESTS_IN_FLIGHT) and calls
   * forwarded to other agents (default MAX_FORWARDS_IN_FLIGHT). Beyond them, LimitExceeded.
   */
  inFlight?: { busRequests?: number; forwards?: number };
};

/** The host name as a subject token: dots (a domain) become '_'. */
export function defaultHostId(): string {
  return hostname().replace(/[.*>\s]/g, '_') || 'localhost';
}

/** Each stream's fleet has its own hosts bucket, so agents of different streams never meet. */
export function hostsBucket(stream: string): string {
  return stream === DEFAULT_STREAM ? DEFAULT_HOSTS_BUCKET : `${DEFAULT_HOSTS_BUCKET}_${stream}`;
}


/**
 * What the agent does with the fleet's news, one thing at a time. A lost lease stops all work at
 * once; the agent folds what the stream holds now (the fences among it) while still fenced, only
 * then takes a new lease epoch, and resumes. A lost host is remembered by every agent; the one
 * that declared it fences its entities at once, and a sweep every lease finishes what a fencing
 * agent that died left undone.
 */
function leaseKeeper(runtime: Runtime, self: string, leaseMs: number, membership: () => FleetMembership | undefined) {
  let queue: Promise<unknown> = Promise.resolve();
  const inTurn = (what: string, job: () => Promise<unknown>) => {
    queue = queue.then(job).catch((error: unknown) => logger.error(`${what} failed`, { error: String(error) }));
  };
  const whenRecovered = async () => {
    while (!runtime.recovered) await sleep(50);
  };
  const sweep = setInterval(() => inTurn('sweeping lost hosts', () => runtime.sweepLostHosts(2 * leaseMs)), leaseMs);
  sweep.unref();
  return {
    lost: () => {
      runtime.stopAllWork();
      inTurn('taking the lease back', async () => {
        await whenRecovered();
        for (;;) {
          try {
            await runtime.catchUpWithStream();
            break;
          } catch (error) {
            logger.warn('still catching up with the stream before taking the lease back', { error: String(error) });
            await sleep(1_000);
          }
        }
        const fleet = membership();
        if (!fleet) return;
        await fleet.rejoin();
        await runtime.resumeAfterRejoin();
      });
    },
    hostLost: (hostId: string, epoch: number, declaredBy: string | undefined) => {
      // Before the lease is held (the bucket's first read) nobody counts as live: fence now.
      const fenceNow = declaredBy === self || declaredBy === undefined || !(membership()?.isLive(declaredBy) ?? false);
      inTurn(`fencing host ${hostId}`, async () => {
        await whenRecovered();
        await runtime.hostLost(hostId, epoch, fenceNow);
      });
    },
    stop: () => clearInterval(sweep),
  };
}

export type Agent = {
  natsUrl: string;
  credentials: Credentials;
  api: ApiServer;
  runtime: Runtime;
  sim: SimulatedDriver;
  gluster: SimulatedGluster;
  /** Present with `imageDriver: 'qemu'`. */
  images?: QemuImageDriver;
  /** Present with `vmDriver: 'qemu'`. */
  vms?: QemuVmDriver;
  hostId: string;
  nc: NatsConnection;
  /** This agent's lease and its view of the fleet's hosts. */
  fleet: FleetMembership;
  stop(): Promise<void>;
};

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const credentials = ensureCredentials(options.credentialsDir ?? join(options.root, 'data', 'credentials'));
  const hostId = options.hostId ?? defaultHostId();
  assertEntityId(hostId, 'hostId');
  let embedded: ServerProcess | undefined;
  let natsUrl = options.natsUrl;
  let access = options.natsAccess ?? {};
  if (!natsUrl) {
    const started = await startEmbeddedServer(options.root);
    embedded = started.server;
    natsUrl = started.url;
    access = { nkeyFile: credentials.nkeyFiles.agent };
    logger.info('embedded nats-server ready', { url: natsUrl, store: 'data/jetstream' });
  }
  const nc = await connectNats(natsUrl, 'opstream-agent', access);
  // A cluster that was just (re)started answers JetStream only once it has a meta leader, and a
  // replicated stream only once it has a leader: the agent waits for both rather than exiting.
  const retrying = (what: string) => (error: unknown) => logger.warn(`${what}: not reachable yet; retrying`, { error: String(error) });
  await untilReachable('reaching JetStream', () => jetstreamManager(nc).then((jsm) => jsm.getAccountInfo()), { tries: 30, onRetry: retrying('JetStream') });
  const stream = await untilReachable('creating the alert stream', () => ensureAlertStream(nc, { name: options.stream ?? DEFAULT_STREAM, replicas: options.replicas }), { tries: 20, onRetry: retrying('the alert stream') });
  const sim = new SimulatedDriver(options.sim);
  const gluster = new SimulatedGluster(options.gluster);
  const images = options.imageDriver === 'qemu' ? new QemuImageDriver({ imageDir: options.imageDir ?? join(options.root, 'data', 'images') }) : undefined;
  const vms = options.vmDriver === 'qemu'
    ? new QemuVmDriver({
      ...options.qemu,
      vmDir: options.vmDir ?? join(options.root, 'data', 'vms'),
      hostId,
      imagePath: images ? (imageId) => images.pathOf(imageId) : undefined,
    })
    : undefined;
  vms?.serve(nc);
  const glusterDriver = new GlusterDriver(gluster, { pollMs: options.gluster?.pollMs });
  const driver = new CompositeDriver({
    [EntityKinds.VM]: vms ?? sim,
    [EntityKinds.Image]: images ?? sim,
    [EntityKinds.StorageConnection]: new TcpConnectionDriver(),
    [EntityKinds.GlusterVolume]: glusterDriver,
  });
  const snapshotEvery = options.snapshotEvery ?? 50;
  // An upgrade from before sealing: what the stream already holds is this installation's history.
  const adopted = unsealedThrough(credentials, await untilReachable('reading the alert stream', () => lastStreamSequence(nc, stream), { tries: 20, onRetry: retrying('the alert stream') }));
  if (adopted > 0) logger.warn('trusting unsealed records written before this installation had a history key', { unsealedThrough: adopted });
  const seal = historySeal(credentials.historyKey, { unsealedThrough: adopted });
  const snapshots = snapshotEvery > 0
    ? await untilReachable('opening the snapshot bucket', () => SnapshotStore.open(nc, logger, { replicas: options.replicas, seal }), { onRetry: retrying('the snapshot bucket') })
    : undefined;
  const { jobRetentionMs, stallTimeouts, defaultStallMs } = options;
  // The runtime asks the fleet lazily: the lease is taken once the runtime can act on its news.
  let membership: FleetMembership | undefined;
  const fleetLink = {
    epoch: () => (membership && !membership.fenced ? membership.epoch : undefined),
    isLive: (host: string) => membership?.isLive(host) ?? false,
  };
  const runtime = await Runtime.start({ nc, stream, driver, snapshots, snapshotEvery, seal, jobRetentionMs, stallTimeouts, defaultStallMs, hostId, fleet: fleetLink });
  const lease = leaseKeeper(runtime, hostId, options.fleet?.leaseMs ?? DEFAULT_LEASE_MS, () => membership);
  membership = await untilReachable('joining the fleet', () => FleetMembership.join(nc, {
    hostId,
    bucket: hostsBucket(stream),
    replicas: options.replicas,
    ...options.fleet,
    onLeaseLost: lease.lost,
    onHostLost: lease.hostLost,
    onHostUp: (host) => runtime.hostReturned(host),
  }), { onRetry: retrying('the hosts bucket') });
  const fanout = await AlertFanout.start(nc, {
    stream,
    seal,
    onQuarantined: (record) => runtime.quarantine.add({ source: 'stream', ...record }),
    onRecord: (seq, subject, decode) => runtime.observe(seq, subject, decode),
  });
  const fleet = { hostId, isLive: (host: string) => fleetLink.isLive(host), hosts: () => membership?.hosts() ?? [], forward: callForwarder(nc, hostId, { maxInFlight: options.inFlight?.forwards }) };
  // Sim.injectFault acts on VMs: it exists only where the simulator runs them.
  const services = { runtime, sim: vms ? undefined : sim, gluster: glusterDriver, storageAllow: storageAllowList(options.storageAllow ?? []), fanout, fleet };
  const tokens: ApiTokens = {
    operator: options.tokens?.operator ?? credentials.operatorToken,
    viewer: options.tokens?.viewer ?? credentials.viewerToken,
  };
  // The API answers from the start — /healthz says 503 and calls say Unavailable until recovery
  // is done — so a long recovery is visible instead of looking like a dead port.
  const api = await startApiServer({
    ...services,
    port: options.port ?? 4040,
    // Fenced (its lease taken) the agent answers nothing it owns: not ready until it is back.
    ready: () => runtime.recovered && !nc.isClosed() && !(membership?.fenced ?? false),
    tokens,
    allowedOrigins: options.allowedOrigins,
    tls: options.tls,
  });
  await runtime.recover();
  // After recovery, which may have read the image: nothing here is needed to be ready.
  void snapshots?.purgeOrphanedImageChunks().then(
    (purged) => {
      if (purged > 0) logger.info('purged the chunks of image writes cut short', { writes: purged });
    },
    (error: unknown) => {
      // A stop soon after the start closes the connection under it: nothing is lost, the next start purges.
      if (!nc.isClosed() && !nc.isDraining()) logger.warn('could not purge orphaned image chunks', { error: String(error) });
    },
  );
  const busApi = startNatsApi(nc, services, { maxInFlight: options.inFlight?.busRequests });
  return {
    natsUrl,
    credentials,
    api,
    runtime,
    sim,
    gluster,
    images,
    vms,
    hostId,
    nc,
    fleet: membership,
    async stop() {
      // Each step runs whatever the one before met (the server may be gone): a stop that gives up
      // half-way would leave QEMU connections, or the embedded server, behind.
      const failures: string[] = [];
      const step = async (name: string, run: () => Promise<unknown> | undefined) => {
        try {
          await run();
        } catch (error) {
          failures.push(`${name}: ${String(error)}`);
          logger.warn('a step of stopping failed; going on', { step: name, error: String(error) });
        }
      };
      await step('bus API', () => busApi.stop());
      await step('WebSocket API', () => api.close());
      await step('shared read', () => fanout.stop());
      // Silent from here: the fleet declares this host lost after the lease, until it starts again.
      lease.stop();
      await step('host lease', () => membership?.stop());
      await step('runtime', () => runtime.stop());
      // The VMs' QEMUs keep running: the next agent re-attaches to them.
      await step('QEMU connections', () => vms?.close());
      // Draining needs the server; without it there is nothing left to flush, only to close.
      await step('NATS connection', () => (nc.isClosed() || nc.isDraining() ? undefined : nc.drain().catch(() => nc.close())));
      await step('embedded server', () => embedded?.stop());
      if (failures.length) throw new Error(`stopped, with failures: ${failures.join('; ')}`);
    },
  };
}
