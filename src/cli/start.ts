// `opstream start`: the agent with its API until a stop signal — the embedded nats-server unless
// NATS_URL names one — and, with --demo, the scripted demo against it.
import { ensureNatsServer } from '../nats/server-binary.mjs';
import { QEMU_IMG_HINT, qemuImgAvailable } from '../../actors/drivers/qemu-image-driver.ts';
import { QEMU_SYSTEM_HINT, qemuSystemAvailable } from '../../actors/drivers/qemu-process.ts';
import { startAgent } from '../agent.ts';
import { prepareViz } from '../viz/static.ts';
import { runDemo } from './demo.ts';
import { PROJECT_ROOT } from './paths.ts';

export type StartOptions = {
  port: number;
  natsUrl?: string;
  demo: boolean;
  replicas: number;
  snapshotEvery: number;
  simStepMs?: number;
  imageDriver: 'sim' | 'qemu';
  credentialsDir?: string;
  storageAllow: string[];
  allowedOrigin: string[];
  tlsCert?: string;
  tlsKey?: string;
  natsNkey?: string;
  natsCa?: string;
  vmDriver: 'sim' | 'qemu';
  vmDir?: string;
  hostId?: string;
  /** Milliseconds a silent host keeps its lease. */
  lease?: number;
  /** MiB per second. */
  migrationMaxBandwidth?: number;
  jobRetention?: number;
  stallTimeout?: number;
};

/** However clients behave, a stop signal ends the process within this. */
const STOP_DEADLINE_MS = 15_000;

/** Runs the agent until SIGINT/SIGTERM; with `demo`, plays the scripted demo against it first. */
export async function start(options: StartOptions): Promise<void> {
  if (!options.natsUrl) ensureNatsServer();
  if (options.imageDriver === 'qemu' && !qemuImgAvailable()) {
    console.error(`opstream: ${QEMU_IMG_HINT}`);
    process.exit(2);
  }
  if (options.vmDriver === 'qemu' && !qemuSystemAvailable()) {
    console.error(`opstream: ${QEMU_SYSTEM_HINT}`);
    process.exit(2);
  }
  const starting = startAgent({
    root: PROJECT_ROOT,
    port: options.port,
    natsUrl: options.natsUrl,
    replicas: options.replicas,
    snapshotEvery: options.snapshotEvery,
    sim: options.simStepMs === undefined ? undefined : { stepMs: options.simStepMs },
    imageDriver: options.imageDriver,
    credentialsDir: options.credentialsDir,
    // The demo connects storage to this agent's own port, standing in for an NFS server.
    storageAllow: options.demo ? [...options.storageAllow, `127.0.0.1:${options.port}`] : options.storageAllow,
    allowedOrigins: options.allowedOrigin,
    tls: options.tlsCert && options.tlsKey ? { certFile: options.tlsCert, keyFile: options.tlsKey } : undefined,
    natsAccess: { nkeyFile: options.natsNkey, caFile: options.natsCa },
    vmDriver: options.vmDriver,
    vmDir: options.vmDir,
    hostId: options.hostId,
    fleet: options.lease === undefined ? undefined : { leaseMs: options.lease, heartbeatMs: Math.max(50, Math.floor(options.lease / 5)) },
    qemu: options.migrationMaxBandwidth === undefined ? undefined : { migrationMaxBandwidth: options.migrationMaxBandwidth * 1024 * 1024 },
    jobRetentionMs: options.jobRetention === undefined ? undefined : options.jobRetention * 1000,
    defaultStallMs: options.stallTimeout === undefined ? undefined : options.stallTimeout * 1000,
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping…');
    setTimeout(() => {
      console.error(`opstream: not stopped after ${STOP_DEADLINE_MS / 1000} s; exiting anyway`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    const failure = await starting.then((agent) => agent.stop()).then(() => undefined, (error: unknown) => error);
    if (failure) console.error(`opstream: stopped, but not cleanly: ${String(failure)}`);
    process.exit(failure ? 1 : 0);
  };
  // From the start, not once "ready" is printed: whoever reads it may signal at once (a test did,
  // and the process died of the default action), and a signal while the agent starts stops it
  // once started rather than leaving its embedded nats-server behind. `on`, not `once`: with no
  // listener left, a second signal (a service manager's TERM on top of a Ctrl-C, or `timeout`
  // passing one on) would kill the process mid-stop. A stop that hangs still ends at its deadline.
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  const agent = await starting;
  if (stopping) return;
  const embedded = options.natsUrl ? '' : ' (embedded, store ./data/jetstream)';
  console.log(
    [
      'opstream agent ready',
      `  API     ${agent.api.url}  (JSON-RPC 2.0 over WebSocket)`,
      // The viewer token rides on the page's URL: the page only reads, and this is the agent's own terminal.
      `  page    http://127.0.0.1:${agent.api.port}/?token=${encodeURIComponent(agent.credentials.viewerToken)}  (machines, fleet and histories in the browser)`,
      `  health  http://127.0.0.1:${agent.api.port}/healthz`,
      `  NATS    ${agent.natsUrl}${embedded}`,
      `  access  ${agent.credentials.dir}/  operator.token, viewer.token (API); manager.nk, viewer.nk (bus)`,
      `  host    ${agent.hostId}  (VMs: ${options.vmDriver === 'qemu' ? 'QEMU' : 'simulated'})`,
      '  Ctrl-C stops it',
    ].join('\n'),
  );
  // Bundle the page in the background now, so its first visitor does not wait for esbuild.
  void prepareViz();
  if (options.demo) {
    await runDemo(agent.api.url, agent.credentials.operatorToken);
    console.log(`\nthe agent keeps serving at ${agent.api.url}; Ctrl-C stops it`);
  }
}
