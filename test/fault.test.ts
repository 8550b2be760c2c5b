// Crashes against real processes: kill -9 the agent at many points of a scripted workload, and
// kill -9 nats-server under load, then check the whole stream.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { historySeal } from '../src/security/history-seal.ts';
import { startAgent } from '../src/agent.ts';
import { connect, DisconnectedError, type OpstreamClient } from '../src/index.ts';
import { connectNats } from '../src/nats/connection.ts';
import { spawnAgent } from './helpers/agent-process.ts';
import { seedStream } from './helpers/seed-stream.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { checkStreamInvariants, seededRandom, type Acknowledged } from './helpers/stream-invariants.ts';

// Outages make every entity warn that it is retrying; the assertions say what matters here.
process.env['OPSTREAM_LOG'] = 'error';

const KILL_ROUNDS = Number(process.env['OPSTREAM_FAULT_ROUNDS'] ?? 4);
const SEED = Number(process.env['OPSTREAM_FAULT_SEED'] ?? Date.now() % 100_000);

let server: NatsTestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

type Workload = { vms: string[]; acknowledged: Acknowledged; random: () => number };

/** One call chosen at random; refused or interrupted calls are simply not acknowledged. */
async function step(host: OpstreamClient, workload: Workload, round: number): Promise<void> {
  const { vms, acknowledged, random } = workload;
  const roll = random();
  try {
    if (roll < 0.25 || vms.length === 0) {
      const vmId = `fault-${round}-${vms.length}`;
      vms.push(vmId);
      const { taskId } = await host.vm.create(vmId, { memoryMiB: 256 });
      acknowledged.set(taskId, { alertName: `vdsm.VM.${vmId}`, methodName: 'VM.create' });
      return;
    }
    const vmId = vms[Math.floor(random() * vms.length)] as string;
    const { status } = await host.vm.getInfo(vmId);
    const method = status === 'Up' ? (roll < 0.6 ? 'VM.pause' : roll < 0.8 ? 'VM.migrate' : 'VM.destroy') : status === 'Paused' ? 'VM.cont' : status === 'Down' ? 'VM.create' : undefined;
    if (!method) return;
    const { taskId } = await host.call<{ taskId: string }>(method, method === 'VM.migrate' ? { vmId, dstHost: 'host-2' } : { vmId });
    acknowledged.set(taskId, { alertName: `vdsm.VM.${vmId}`, methodName: method });
  } catch {
    // InvalidTransition (busy), Disconnected (the agent was killed), Unavailable (NATS down).
  }
}

async function untilNoRunningTasks(host: OpstreamClient, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = await host.call<unknown[]>('Host.getRunningTasks', {});
    if (running.length === 0) return;
    if (Date.now() > deadline) throw new Error(`tasks still running: ${JSON.stringify(running)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('kill -9 the agent', () => {
  it(`loses nothing acknowledged and resumes every task (${KILL_ROUNDS} kills, seed ${SEED})`, async () => {
    server = await NatsTestServer.start();
    const workload: Workload = { vms: [], acknowledged: new Map(), random: seededRandom(SEED) };
    for (let round = 0; round < KILL_ROUNDS; round += 1) {
      const agent = await spawnAgent(server.url, ['--sim-step-ms', '25', '--snapshot-every', '7']);
      const host = await connect(agent.url, { token: agent.token });
      const killAfter = 100 + workload.random() * 400;
      const started = Date.now();
      const load = (async () => {
        while (Date.now() - started < killAfter + 200) await step(host, workload, round);
      })();
      await new Promise((resolve) => setTimeout(resolve, killAfter));
      await agent.kill();
      await load;
      await host.close();
    }
    const survivor = await spawnAgent(server.url, ['--sim-step-ms', '5']);
    const host = await connect(survivor.url, { token: survivor.token });
    await untilNoRunningTasks(host);
    await host.close();
    await survivor.stop();

    const nc = await connectNats(server.url, 'checker');
    const { entities } = await checkStreamInvariants(nc, workload.acknowledged);
    await nc.drain();
    expect(workload.acknowledged.size).toBeGreaterThan(KILL_ROUNDS);
    // A create may land and the agent die before it answers: registered, never acknowledged.
    expect(entities).toBeGreaterThanOrEqual(acknowledgedVms(workload));
    expect(entities).toBeLessThanOrEqual(new Set(workload.vms).size);
  });
});

describe('kill -9 the agent in the middle of a create, a pause and a migration', () => {
  it('resumes each as its state declares, under the same task id', async () => {
    server = await NatsTestServer.start();
    const slow = await spawnAgent(server.url, ['--sim-step-ms', '150']);
    let host = await connect(slow.url, { token: slow.token });
    const [creating, pausing, migrating] = ['creating', 'pausing', 'migrating'];
    await host.vm.create(pausing);
    await host.vm.create(migrating);
    await untilStatus(host, pausing, 'Up');
    await untilStatus(host, migrating, 'Up');
    // The memory copy takes longest (5 ticks): start it first, then the create and the pause.
    const migrate = await host.vm.migrate(migrating, 'host-2');
    await untilStage(host, migrating, 'copying memory');
    const [create, pause] = await Promise.all([host.vm.create(creating), host.vm.pause(pausing)]);
    const inFlight = await Promise.all([creating, pausing, migrating].map((vmId) => host.vm.getInfo(vmId)));
    expect(inFlight.map((info) => info.operationInfo.operationDescription)).toEqual(['Creating', 'Pausing', 'Migration']);
    await host.close();
    await slow.kill();

    const restarted = await spawnAgent(server.url, ['--sim-step-ms', '5']);
    host = await connect(restarted.url, { token: restarted.token });
    await untilNoRunningTasks(host);
    const [afterCreate, afterPause, afterMigrate] = await Promise.all([creating, pausing, migrating].map((vmId) => host.vm.getInfo(vmId)));
    expect(afterCreate).toMatchObject({ status: 'Up', task: null });
    expect(afterPause).toMatchObject({ status: 'Paused', task: null });
    expect(afterMigrate).toMatchObject({ status: 'Up', operationInfo: { lastError: [900, expect.stringContaining('Migration cannot be resumed')] } });
    await host.close();
    await restarted.stop();

    const nc = await connectNats(server.url, 'checker');
    const acknowledged: Acknowledged = new Map([
      [create.taskId, { alertName: `vdsm.VM.${creating}`, methodName: 'VM.create' }],
      [pause.taskId, { alertName: `vdsm.VM.${pausing}`, methodName: 'VM.pause' }],
      [migrate.taskId, { alertName: `vdsm.VM.${migrating}`, methodName: 'VM.migrate' }],
    ]);
    await checkStreamInvariants(nc, acknowledged);
    // The same task ids carried the operations to their end.
    const { AlertLog } = await import('../actors/alert-log.ts');
    const log = await AlertLog.open(nc, 'VDSM');
    const endOf = async (vmId: string) => {
      let last;
      for await (const { alert } of log.alerts(`vdsm.VM.${vmId}`)) last = alert;
      return last;
    };
    expect(await endOf(creating)).toMatchObject({ task: { id: create.taskId }, taskStatus: 'finished' });
    expect(await endOf(pausing)).toMatchObject({ task: { id: pause.taskId }, taskStatus: 'finished' });
    expect(await endOf(migrating)).toMatchObject({ task: { id: migrate.taskId }, taskStatus: 'failed' });
    await nc.drain();
  });
});

describe('a client across a crash of the agent it talks to', () => {
  it('resubscribes once the restarted agent has recovered and sees the resumed operation end', async () => {
    server = await NatsTestServer.start();
    const port = await freePort();
    let agent = await spawnAgent(server.url, ['--port', String(port), '--sim-step-ms', '100']);
    const host = await connect(agent.url, { token: agent.token });
    const vmId = 'survivor';
    await host.subscribe(`vdsm.VM.${vmId}`);
    await host.vm.create(vmId);
    const first = await host.waitForEvent(`vdsm.VM.${vmId}`, 5_000);
    await agent.kill();
    // History for the new agent to rebuild: its API is up (answering Unavailable) a while before
    // it is ready, and the client's reconnect lands in that window.
    const seeder = await connectNats(server.url, 'seeder');
    await seedStream(seeder, 500, 100, undefined, 'history', historySeal(Buffer.from(readFileSync(join(agent.credentialsDir, 'history.key'), 'utf8').trim(), 'base64url')));
    await seeder.drain();
    agent = await spawnAgent(server.url, ['--port', String(port), '--sim-step-ms', '5', '--snapshot-every', '0']);
    const seen = [first.seq];
    for (;;) {
      try {
        const event = await host.waitForEvent(`vdsm.VM.${vmId}`, 10_000);
        seen.push(event.seq);
        if (event.operationInfo.extraData['state'] === 'up') break;
      } catch (error) {
        if (!(error instanceof DisconnectedError)) throw error;
        await host.waitForReconnect();
      }
    }
    expect(seen).toEqual([...new Set(seen)].sort((a, b) => a - b));
    await host.close();
    await agent.stop();
  });
});

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function untilStatus(host: OpstreamClient, vmId: string, status: string): Promise<void> {
  while ((await host.vm.getInfo(vmId)).status !== status) await new Promise((resolve) => setTimeout(resolve, 20));
}

async function untilStage(host: OpstreamClient, vmId: string, stageDescription: string): Promise<void> {
  while ((await host.vm.getInfo(vmId)).operationInfo.stageDescription !== stageDescription) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('kill -9 nats-server under load', () => {
  it('keeps every acknowledged alert across a server crash on the same store', async () => {
    const nats = await NatsTestServer.start();
    server = nats;
    const agent = await startAgent({ natsUrl: nats.url, root: process.cwd(), port: 0, sim: { stepMs: 20 }, snapshotEvery: 5 });
    const host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    const workload: Workload = { vms: [], acknowledged: new Map(), random: seededRandom(SEED) };
    let running = true;
    const load = (async () => {
      while (running) await step(host, workload, 0);
    })();
    await new Promise((resolve) => setTimeout(resolve, 600));
    await nats.kill();
    await new Promise((resolve) => setTimeout(resolve, 400));
    await nats.revive();
    await new Promise((resolve) => setTimeout(resolve, 800));
    running = false;
    await load;
    await untilNoRunningTasks(host);
    await host.close();
    await agent.stop();

    const nc = await connectNats(nats.url, 'checker');
    await checkStreamInvariants(nc, workload.acknowledged);
    await nc.drain();
    expect(workload.acknowledged.size).toBeGreaterThan(3);
    // A crash, a revival, the workload drained and the whole stream checked: under a full parallel
    // suite on 2 cores this takes longer than vitest's default budget.
  }, 90_000);
});

function acknowledgedVms(workload: Workload): number {
  return new Set([...workload.acknowledged.values()].map(({ alertName }) => alertName)).size;
}
