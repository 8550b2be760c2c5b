import { ensureNatsServer } from '../../scripts/setup.mjs';
import { QEMU_IMG_HINT, qemuImgAvailable } from '../../actors/drivers/qemu-image-driver.ts';
import { startAgent } from '../agent.ts';
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
  jobRetention?: number;
  stallTimeout?: number;
};

/** Runs the agent until SIGINT/SIGTERM; with `demo`, plays the scripted demo against it first. */
export async function start(options: StartOptions): Promise<void> {
  if (!options.natsUrl) ensureNatsServer();
  if (options.imageDriver === 'qemu' && !qemuImgAvailable()) {
    console.error(`opstream: ${QEMU_IMG_HINT}`);
    process.exit(2);
  }
  const agent = await startAgent({
    root: PROJECT_ROOT,
    port: options.port,
    natsUrl: options.natsUrl,
    replicas: options.replicas,
    snapshotEvery: options.snapshotEvery,
    sim: options.simStepMs === undefined ? undefined : { stepMs: options.simStepMs },
    imageDriver: options.imageDriver,
    jobRetentionMs: options.jobRetention === undefined ? undefined : options.jobRetention * 1000,
    defaultStallMs: options.stallTimeout === undefined ? undefined : options.stallTimeout * 1000,
  });
  const embedded = options.natsUrl ? '' : ' (embedded, store ./data/jetstream)';
  console.log(
    [
      'opstream agent ready',
      `  API     ${agent.api.url}  (JSON-RPC 2.0 over WebSocket)`,
      `  health  http://127.0.0.1:${agent.api.port}/healthz`,
      `  NATS    ${agent.natsUrl}${embedded}`,
      '  Ctrl-C stops it',
    ].join('\n'),
  );
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping…');
    await agent.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  if (options.demo) {
    await runDemo(agent.api.url);
    console.log(`\nthe agent keeps serving at ${agent.api.url}; Ctrl-C stops it`);
  }
}
