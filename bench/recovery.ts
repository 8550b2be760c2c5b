// Replay rate beside the raw read rate of the same stream; restart time with and without
// snapshots; memory per idle entity. One server, one seeded stream, one run.
import { randomBytes } from 'node:crypto';
import { historySeal } from '../src/security/history-seal.ts';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { Runtime } from '../actors/runtime.ts';
import { SnapshotStore } from '../actors/snapshot-store.ts';
import { createLogger } from '../src/log.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import { rate, type Figure } from './report.ts';

export type RecoveryBenchOptions = { entities: number; alertsPerEntity: number };

const quiet = createLogger('bench');

export async function benchRecovery({ entities, alertsPerEntity }: RecoveryBenchOptions): Promise<Figure[]> {
  const { seedStream } = await import('../test/helpers/seed-stream.ts');
  const server = await NatsTestServer.start();
  const nc = await connectNats(server.url, 'bench-recovery');
  try {
    const stream = await ensureAlertStream(nc);
    // Sealed like an agent's history, and checked like one on every replay below.
    const seal = historySeal(randomBytes(32));
    const seedStarted = performance.now();
    const alerts = await seedStream(
      nc,
      entities,
      alertsPerEntity,
      (done, total) => console.log(`  seeding the stream: ${Math.round((100 * done) / total)}% of ${total.toLocaleString('en-US')} alerts`),
      'bench',
      seal,
    );
    const seedSeconds = (performance.now() - seedStarted) / 1000;
    const driver = new SimulatedDriver({ stepMs: 0 });
    const snapshots = await SnapshotStore.open(nc, quiet, { bucket: 'BENCH_SNAPSHOTS', seal });
    const runtime = () => Runtime.start({ nc, stream, driver, snapshots, snapshotEvery: 1_000_000, logger: quiet, seal });

    // Raw read: every message of the stream through an ordered consumer, bodies untouched.
    const first = await runtime();
    const readStarted = performance.now();
    let read = 0;
    for await (const raw of first.alertLog.readAll()) read += raw.seq > 0 ? 1 : 0;
    const readSeconds = (performance.now() - readStarted) / 1000;

    // Full replay (the snapshot bucket is empty): every alert parsed, folded and checked.
    collectGarbage();
    const heapBefore = process.memoryUsage().heapUsed;
    const replayStarted = performance.now();
    const full = await first.recover();
    const replaySeconds = (performance.now() - replayStarted) / 1000;
    collectGarbage();
    const bytesPerEntity = (process.memoryUsage().heapUsed - heapBefore) / first.entityCount;
    console.log('  full replay done; saving snapshots at a clean shutdown');
    await first.stop(); // saves every entity's snapshot and the checkpoint

    // The task index is rebuilt after the agent is ready, in the background: timed on its own, and
    // each runtime stopped before the next is timed so no background read overlaps it.
    const restart = async () => {
      const recovered = await runtime();
      const timing = await timed(() => recovered.recover());
      const index = await timed(() => recovered.tasks.ready);
      recovered.halt();
      return { ...timing, indexSeconds: index.seconds };
    };
    const fromCheckpoint = await restart();
    await snapshots.clearCheckpoint();
    const fromSnapshots = await restart();

    return [
      rate(`seeded: ${entities.toLocaleString('en-US')} VMs × ${alertsPerEntity} alerts (pipelined publishes)`, alerts, seedSeconds),
      rate('raw read of the stream, ordered consumer', read, readSeconds),
      rate('replay: alerts parsed, folded into entity state and checked', full.alertsReplayed, replaySeconds),
      { name: 'ratio replay / raw read', value: read / readSeconds === 0 ? 0 : full.alertsReplayed / replaySeconds / (read / readSeconds), unit: '×' },
      { name: 'restart to ready, no snapshots (full replay)', value: replaySeconds, unit: 's' },
      { name: 'restart to ready, snapshots + checkpoint (clean shutdown)', value: fromCheckpoint.seconds, unit: 's', detail: `${fromCheckpoint.result.alertsReplayed} alerts replayed` },
      { name: 'restart to ready, snapshots, no checkpoint (after a crash)', value: fromSnapshots.seconds, unit: 's', detail: `${fromSnapshots.result.alertsReplayed} alerts replayed` },
      { name: '  then the task index (jobs, retries), rebuilt in the background', value: fromSnapshots.indexSeconds, unit: 's', detail: 'the last hour of alerts' },
      { name: 'memory per idle entity (heap after recovery, after GC)', value: bytesPerEntity, unit: 'B' },
    ];
  } finally {
    await nc.drain();
    await server.stop();
  }
}

async function timed<T>(run: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  const started = performance.now();
  const result = await run();
  return { seconds: (performance.now() - started) / 1000, result };
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc (npm run bench does) to measure memory');
  gc();
  gc();
}
