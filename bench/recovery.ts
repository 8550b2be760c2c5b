// Replay rate beside the raw read rate of the same stream; restart time with and without
// snapshots, and after a crash that came after a periodic checkpoint; memory of idle entities and
// of ids that were looked up but never created. One server, one seeded stream, one run.
import { randomBytes } from 'node:crypto';
import { historySeal } from '../src/security/history-seal.ts';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { Runtime } from '../actors/runtime.ts';
import { SnapshotStore } from '../actors/snapshot-store.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { createLogger } from '../src/log.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { AlertFanout } from '../src/subscriptions/fanout.ts';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import { rate, type Figure } from './report.ts';

export type RecoveryBenchOptions = { entities: number; alertsPerEntity: number };

const quiet = createLogger('bench');
const MiB = 1024 * 1024;

export async function benchRecovery({ entities, alertsPerEntity }: RecoveryBenchOptions): Promise<{ title: string; figures: Figure[] }> {
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
    // The seeded history is a whole VM lifecycle: never shorter than 12 alerts, whatever was asked.
    const perEntity = alerts / entities;
    const title =
      `recovery: ${entities.toLocaleString('en-US')} VMs × ${perEntity} alerts = ${alerts.toLocaleString('en-US')} alerts seeded and replayed` +
      (perEntity === alertsPerEntity ? '' : ` (BENCH_ALERTS_PER_ENTITY=${alertsPerEntity}; a seeded lifecycle has at least 12)`);
    const driver = new SimulatedDriver({ stepMs: 0 });
    const snapshots = await SnapshotStore.open(nc, quiet, { bucket: 'BENCH_SNAPSHOTS', seal });
    const runtime = (checkpointEveryMs = 0) =>
      Runtime.start({ nc, stream, driver, snapshots, snapshotEvery: 1_000_000, checkpointEveryMs, logger: quiet, seal });

    // The first runtime lives only in here: restarts below must not carry its heap (GC time).
    const replayed = async () => {
      // Raw read: every message of the stream through an ordered consumer, bodies untouched.
      const first = await runtime();
      const readStarted = performance.now();
      let read = 0;
      for await (const raw of first.alertLog.readAll()) read += raw.seq > 0 ? 1 : 0;
      const readSeconds = (performance.now() - readStarted) / 1000;

      // Full replay (the snapshot bucket is empty): every alert parsed, seal-checked, folded and checked.
      collectGarbage();
      const before = process.memoryUsage();
      const replayStarted = performance.now();
      const full = await first.recover();
      const replaySeconds = (performance.now() - replayStarted) / 1000;
      collectGarbage();
      const idle = process.memoryUsage();
      const entityCount = first.entityCount;

      // Lookups and refused calls for ids nobody created: an agent must keep nothing of them.
      for (let i = 0; i < ghosts; i += 1) {
        const ref = { kind: EntityKinds.VM, id: `ghost-${i}` };
        if (i % 2 === 0) await first.existing(ref).catch(() => undefined);
        else await first.call(ref, 'VM.pause', { vmId: ref.id }, (task) => ({ type: 'PAUSE', task })).catch(() => undefined);
      }
      collectGarbage();
      const afterGhosts = process.memoryUsage();
      const ghostsKept = first.entityCount - full.entities.length;
      console.log('  full replay done; saving snapshots at a clean shutdown');
      const stopped = await timed(() => first.stop()); // saves every entity's snapshot and the checkpoint
      return { read, readSeconds, full, replaySeconds, before, idle, entityCount, afterGhosts, ghostsKept, stopSeconds: stopped.seconds };
    };
    const ghosts = Math.max(entities, 100_000);
    const { read, readSeconds, full, replaySeconds, before, idle, entityCount, afterGhosts, ghostsKept, stopSeconds } = await replayed();
    const bytesPerEntity = (idle.heapUsed - before.heapUsed) / entityCount;

    // The task index is rebuilt after the agent is ready, in the background: timed on its own, and
    // each runtime stopped before the next is timed so no background read overlaps it.
    const restart = async () => {
      const recovered = await runtime();
      // A fresh process would not carry the previous runtime's garbage; until this one started,
      // the driver still held the previous one.
      collectGarbage();
      const timing = await timed(() => recovered.recover());
      const index = await timed(() => recovered.tasks.ready);
      recovered.halt();
      return { ...timing, indexSeconds: index.seconds };
    };
    const fromCheckpoint = await restart();

    // A crash under load: an agent follows the stream and writes periodic checkpoints while VMs
    // are paused and continued, and dies with operations in flight after its last checkpoint.
    const crashed = await crashUnderLoad(runtime, nc, stream, Math.min(1_000, entities));
    const afterCrash = await restart();
    await snapshots.clearCheckpoint();
    const noCheckpoint = await restart();

    const rawRate = read / readSeconds;
    const replayRate = full.alertsReplayed / replaySeconds;
    return {
      title,
      figures: [
        rate(`seeded: ${entities.toLocaleString('en-US')} VMs × ${perEntity} alerts (pipelined publishes)`, alerts, seedSeconds),
        rate('raw read of the stream, ordered consumer', read, readSeconds),
        rate('replay: alerts parsed, seal-checked, folded and checked', full.alertsReplayed, replaySeconds),
        { name: 'ratio replay / raw read', value: rawRate === 0 ? 0 : replayRate / rawRate, unit: '×' },
        { name: 'restart to ready, no snapshots (full replay)', value: replaySeconds, unit: 's', detail: `${full.alertsReplayed} alerts replayed` },
        { name: 'clean shutdown: every snapshot, their image and the checkpoint saved', value: stopSeconds, unit: 's' },
        { name: 'restart to ready, snapshots + checkpoint (clean shutdown: one image)', value: fromCheckpoint.seconds, unit: 's', detail: `${fromCheckpoint.result.alertsReplayed} alerts replayed` },
        {
          name: 'restart to ready after a crash (periodic checkpoint)',
          value: afterCrash.seconds,
          unit: 's',
          detail: `${afterCrash.result.alertsReplayed} alerts replayed from seq ${afterCrash.result.fromSeq}; ${crashed.inFlight} calls in flight at the crash`,
        },
        { name: 'restart to ready, snapshots, no checkpoint at all', value: noCheckpoint.seconds, unit: 's', detail: `${noCheckpoint.result.alertsReplayed} alerts replayed, whole stream read` },
        { name: '  then the task index (jobs, retries), rebuilt in the background', value: noCheckpoint.indexSeconds, unit: 's', detail: 'the last hour of alerts' },
        { name: 'memory per idle entity (heap after recovery, after GC)', value: bytesPerEntity, unit: 'B' },
        {
          name: `memory of ${entityCount.toLocaleString('en-US')} idle entities: heap / RSS`,
          value: idle.heapUsed / MiB,
          unit: 'MiB',
          detail: `RSS ${(idle.rss / MiB).toFixed(0)} MiB; heap before recovery ${(before.heapUsed / MiB).toFixed(0)} MiB`,
        },
        {
          name: `${ghosts.toLocaleString('en-US')} never-created ids served: heap kept per id`,
          value: (afterGhosts.heapUsed - idle.heapUsed) / ghosts,
          unit: 'B',
          detail: `${ghostsKept} entities kept; heap ${(afterGhosts.heapUsed / MiB).toFixed(0)} MiB, RSS ${(afterGhosts.rss / MiB).toFixed(0)} MiB after`,
        },
      ],
    };
  } finally {
    await nc.drain();
    await server.stop();
  }
}

/**
 * Starts an agent's runtime that follows the stream, pauses and continues `vms` VMs, writes a
 * periodic checkpoint, starts another round and halts mid-way: what a crash leaves behind.
 */
async function crashUnderLoad(
  runtime: (checkpointEveryMs?: number) => Promise<Runtime>,
  nc: Awaited<ReturnType<typeof connectNats>>,
  stream: string,
  vms: number,
): Promise<{ inFlight: number }> {
  const agent = await runtime();
  const fanout = await AlertFanout.start(nc, { stream, onRecord: (seq, subject, decode) => agent.observe(seq, subject, decode) });
  await agent.recover();
  const ids = Array.from({ length: vms }, (_, i) => `bench-${i}`);
  const call = (id: string, method: 'VM.pause' | 'VM.cont') =>
    agent.call({ kind: EntityKinds.VM, id }, method, { vmId: id }, (task) => ({ type: method === 'VM.pause' ? 'PAUSE' : 'CONT', task }));
  const until = async (status: string) => {
    for (const id of ids) while ((await agent.existing({ kind: EntityKinds.VM, id })).view().status !== status) await sleep(1);
  };
  await Promise.all(ids.map((id) => call(id, 'VM.pause')));
  await until('Paused');
  const inspected = async () => {
    const last = await agent.alertLog.streamLastSequence();
    while (fanout.position < last) await sleep(1);
  };
  await inspected();
  await agent.checkpointNow(); // the first period: snapshots lag
  await Promise.all(ids.map((id) => call(id, 'VM.cont')));
  await until('Up');
  await inspected();
  await agent.checkpointNow(); // saves what lagged, writes a checkpoint
  // More load, and the crash while it runs: what was sent may land, nothing is saved.
  const inFlight = ids.map((id) => call(id, 'VM.pause').catch(() => undefined));
  await sleep(20);
  agent.halt();
  await fanout.stop();
  await sleep(200);
  return { inFlight: inFlight.length };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
