// A fleet on one 3-node cluster, stream at replicas 3: aggregate durable alerts/s of 1, 2 and 4
// agents each driving its own VMs, beside raw JetStream publishes/s of the same shape on the same
// cluster; then one agent's start-to-ready time over 10,000 sealed entities, beside a raw read.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { startAgent, type Agent } from '../src/agent.ts';
import { DEFAULT_STREAM } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { natsServerBinary } from '../src/nats/server-process.ts';
import { ensureCredentials, type Credentials } from '../src/security/credentials.ts';
import { historySeal } from '../src/security/history-seal.ts';
import { NatsTestCluster } from '../test/helpers/nats-cluster.ts';
import { rate, type Figure } from './report.ts';
import { driveVm } from './transitions.ts';

export type FleetBenchOptions = {
  agentCounts: number[];
  vmsPerAgent: number;
  pauseCycles: number;
  recoveryEntities: number;
  alertsPerEntity: number;
};

/** An alert as agents append them is about this size (a VM's, with its task and OperationInfo). */
const RAW_PAYLOAD_BYTES = 700;

export async function benchFleet(options: FleetBenchOptions): Promise<Figure[]> {
  const version = spawnSync(natsServerBinary(), ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`  ${version}; 3-node cluster on this machine, stream and snapshots at replicas 3`);
  const cluster = await NatsTestCluster.start(3);
  const credentialsDir = mkdtempSync(join(tmpdir(), 'opstream-bench-fleet-'));
  const credentials = ensureCredentials(credentialsDir);
  const nc = await connectNats(cluster.url, 'bench-fleet');
  const figures: Figure[] = [];
  try {
    let alertsPerVm = 0;
    const rounds: Array<{ agents: number; alerts: number; seconds: number }> = [];
    for (const agents of options.agentCounts) {
      const fleet: Agent[] = [];
      try {
        // One after another: the first creates the stream, the rest find it.
        for (let i = 0; i < agents; i += 1) fleet.push(await benchAgent(cluster.url, credentials, `f${agents}h${i + 1}`));
        const before = await lastSeq(nc);
        const started = performance.now();
        await Promise.all(
          fleet.map((agent, a) =>
            Promise.all(Array.from({ length: options.vmsPerAgent }, (_, v) => driveVm(agent.runtime, `f${agents}-h${a + 1}-vm${v}`, options.pauseCycles))),
          ),
        );
        const seconds = (performance.now() - started) / 1000;
        const alerts = (await lastSeq(nc)) - before;
        rounds.push({ agents, alerts, seconds });
        alertsPerVm ||= Math.round(alerts / (agents * options.vmsPerAgent));
      } finally {
        await Promise.allSettled(fleet.map((agent) => agent.stop()));
      }
    }

    // The reference, after the agents so it can take their shape: as many chains of awaited,
    // guarded publishes as the largest fleet drove VMs, each as long as a VM's history.
    const maxAgents = Math.max(...options.agentCounts);
    const raw = await rawPublishes(nc, maxAgents * options.vmsPerAgent, alertsPerVm);
    const rawRate = raw.count / raw.seconds;
    figures.push(rate(`raw JetStream R3 publishes, msg id + last-subject-seq guard, ${maxAgents * options.vmsPerAgent} chains of ${alertsPerVm}`, raw.count, raw.seconds));
    for (const { agents, alerts, seconds } of rounds) {
      const plural = agents > 1 ? 's' : '';
      figures.push(rate(`${agents} agent${plural} × ${options.vmsPerAgent} VMs: durable alerts/s, aggregate`, alerts, seconds));
      figures.push({ name: `  ratio ${agents} agent${plural} / raw`, value: alerts / seconds / rawRate, unit: '×' });
    }

    // Recovery: a host's worth of entities in the stream, sealed, with no snapshots (the worst
    // case, after a crash that lost them); a fresh agent's start to ready.
    const { seedStream } = await import('../test/helpers/seed-stream.ts');
    const seeded = await seedStream(
      nc,
      options.recoveryEntities,
      options.alertsPerEntity,
      (done, total) => console.log(`  seeding: ${Math.round((100 * done) / total)}% of ${total.toLocaleString('en-US')} alerts`),
      'fleetrec',
      historySeal(credentials.historyKey),
    );
    const inStream = await lastSeq(nc);
    const recoveredStarted = performance.now();
    const recovering = await benchAgent(cluster.url, credentials, 'recovering');
    const recoverySeconds = (performance.now() - recoveredStarted) / 1000;
    try {
      const readStarted = performance.now();
      let read = 0;
      for await (const record of recovering.runtime.alertLog.readAll()) read += record.seq > 0 ? 1 : 0;
      const readSeconds = (performance.now() - readStarted) / 1000;
      figures.push({
        name: `agent start to ready, ${options.recoveryEntities.toLocaleString('en-US')} entities (+ the runs above)`,
        value: recoverySeconds,
        unit: 's',
        detail: `${inStream.toLocaleString('en-US')} alerts in the stream, ${seeded.toLocaleString('en-US')} of them seeded, no snapshots`,
      });
      figures.push(rate('  raw read of the same stream, ordered consumer', read, readSeconds));
      figures.push({ name: '  ratio recovery alerts/s / raw read', value: inStream / recoverySeconds / (read / readSeconds), unit: '×' });
    } finally {
      await recovering.stop(); // a clean stop: snapshots of every entity, and the checkpoint
    }
    const restartStarted = performance.now();
    const restarted = await benchAgent(cluster.url, credentials, 'recovering');
    figures.push({ name: '  the same agent restarted after a clean stop (snapshots + checkpoint)', value: (performance.now() - restartStarted) / 1000, unit: 's' });
    await restarted.stop();
    return figures;
  } finally {
    await nc.drain();
    await cluster.stop();
    rmSync(credentialsDir, { recursive: true, force: true });
  }
}

function benchAgent(natsUrl: string, credentials: Credentials, hostId: string): Promise<Agent> {
  return startAgent({ natsUrl, root: process.cwd(), port: 0, replicas: 3, hostId, sim: { stepMs: 0 }, credentialsDir: credentials.dir });
}

async function lastSeq(nc: NatsConnection): Promise<number> {
  return (await (await jetstreamManager(nc)).streams.info(DEFAULT_STREAM)).state.last_seq;
}

/** `chains` subjects at once, each a chain of `perChain` awaited publishes guarded as agents guard theirs. */
async function rawPublishes(nc: NatsConnection, chains: number, perChain: number): Promise<{ count: number; seconds: number }> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'BENCH_RAW', subjects: ['benchraw.>'], num_replicas: 3 });
  const js: JetStreamClient = jetstream(nc);
  const payload = JSON.stringify({ pad: 'x'.repeat(RAW_PAYLOAD_BYTES - 10) });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: chains }, async (_, c) => {
      let last = 0;
      for (let i = 0; i < perChain; i += 1) {
        last = (await js.publish(`benchraw.vm${c}`, payload, { msgID: `vm${c}:${i}`, expect: { lastSubjectSequence: last } })).seq;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await jsm.streams.delete('BENCH_RAW');
  return { count: chains * perChain, seconds };
}

