// Three agents (h1, h2, h3) as real processes on a 3-node cluster, stream and KV at replicas 3:
// calls through any agent reach the owner, a migration hands a VM over with one history, a killed
// agent's VMs go Unknown and come back, a paused agent past its lease is fenced out by the stream
// itself, and killing the stream leader under load loses nothing acknowledged.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/domain/errors.ts';
import { RpcError } from '../src/client/errors.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { connectNats } from '../src/nats/connection.ts';
import { uniqueId } from './helpers/agent.ts';
import { spawnAgent, type AgentProcess } from './helpers/agent-process.ts';
import { NatsTestCluster } from './helpers/nats-cluster.ts';
import { checkStreamInvariants, type Acknowledged } from './helpers/stream-invariants.ts';
import type { NatsConnection } from '@nats-io/transport-node';

const LEASE_MS = 2_000;
/** Long enough that a migration's memory copy (5 steps) is still running when a test strikes. */
const STEP_MS = 300;
const HOSTS = ['h1', 'h2', 'h3'] as const;
type Host = (typeof HOSTS)[number];

type Step = { seq: number; revision: number; event: { type: string; [key: string]: unknown }; status: string; hostId?: string; taskStatus?: string };

let cluster: NatsTestCluster;
const agents = new Map<Host, AgentProcess>();
const clients = new Map<Host, OpstreamClient>();

const client = (host: Host): OpstreamClient => clients.get(host) as OpstreamClient;

async function startHost(host: Host): Promise<void> {
  const agent = await spawnAgent(cluster.url, ['--host-id', host, '--replicas', '3', '--lease', String(LEASE_MS), '--sim-step-ms', String(STEP_MS)]);
  agents.set(host, agent);
  clients.get(host)?.close().catch(() => undefined);
  clients.set(host, await connect(agent.url, { token: agent.token }));
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(100);
  }
}

const statusOn = (via: Host, vmId: string, status: string, hostId?: string) =>
  eventually(`${vmId} ${status}${hostId ? ` on ${hostId}` : ''} as ${via} sees it`, async () => {
    const info = await client(via).vm.getInfo(vmId);
    return info.status === status && (hostId === undefined || info.hostId === hostId) ? info : undefined;
  });

const copyingMemory = (via: Host, vmId: string) =>
  eventually(`${vmId} copying memory`, async () => {
    const info = await client(via).vm.getInfo(vmId);
    return info.operationInfo.stageDescription === 'copying memory' ? info : undefined;
  });

async function history(via: Host, vmId: string): Promise<Step[]> {
  return (await client(via).call<{ steps: Step[] }>('History.get', { alertName: `vdsm.VM.${vmId}` })).steps;
}

beforeAll(async () => {
  cluster = await NatsTestCluster.start(3);
  // One at a time: the first creates the stream and the hosts bucket at replicas 3.
  for (const host of HOSTS) await startHost(host);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([...clients.values()].map((each) => each.close()));
  await Promise.allSettled([...agents.values()].map((agent) => agent.stop()));
  await cluster?.stop();
}, 60_000);

describe('a fleet of three agents on a 3-node cluster', () => {
  it('sees every host up', async () => {
    const fleet = await eventually('three responsive hosts', async () => {
      const listed = await client('h2').call<{ hostId: string; hosts: Array<{ hostId: string; responsive: boolean }> }>('Host.list');
      return listed.hosts.filter((host) => host.responsive).length === 3 ? listed : undefined;
    });
    expect(fleet.hostId).toBe('h2');
    expect(fleet.hosts.map((host) => host.hostId)).toEqual(['h1', 'h2', 'h3']);
  });

  it('answers a call through any agent as the owner would, and addresses one host on the bus', async () => {
    const vmId = uniqueId('fleet-any');
    // Created through h2 for host h1: the call goes to h1, which owns and drives the VM.
    await client('h2').vm.create(vmId, { hostId: 'h1', memoryMiB: 256 });
    const up = await statusOn('h3', vmId, 'Up', 'h1');
    expect(up.hostId).toBe('h1');
    // A change through h3 is forwarded to h1; the task is the owner's.
    const paused = await client('h3').vm.pause(vmId);
    await statusOn('h1', vmId, 'Paused');
    const steps = await history('h2', vmId);
    expect(steps.every((step) => step.hostId === 'h1')).toBe(true);
    expect(steps.some((step) => step.event.type === 'PAUSE' && step.taskStatus === 'running')).toBe(true);
    expect((await client('h2').jobs.get(paused.jobId)).jobId).toBe(paused.jobId);

    // `opstream.api.<hostId>` reaches that host's agent alone, whoever owns the VM.
    const nc = await connectNats(cluster.url, 'fleet-test');
    try {
      const reply = await nc.request('opstream.api.h3', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'Host.list', params: {} }), { timeout: 5_000 });
      expect(reply.json<{ result: { hostId: string } }>().result.hostId).toBe('h3');
      const cont = await nc.request('opstream.api.h3', JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'VM.cont', params: { vmId } }), { timeout: 10_000 });
      expect(cont.json<{ result?: { taskId: string } }>().result?.taskId).toBeTruthy();
    } finally {
      await nc.close();
    }
    await statusOn('h3', vmId, 'Up', 'h1');
  });

  it('refuses a create for a host the fleet never saw, naming the live ones', async () => {
    const error = await client('h1').vm.create(uniqueId('fleet-nohost'), { hostId: 'h9' }).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).code).toBe(ErrorCodes.InvalidParams);
    expect((error as RpcError).message).toMatch(/no agent of the fleet is host h9 \(live: h1, h2, h3\)/);
  });

  it("answers Host.getRunningTasks for its own host, as VDSM does, and for another host's or the fleet's when asked", async () => {
    const vmId = uniqueId('fleet-tasks');
    // The create's prepare and power-up take 8 steps of 300 ms: its task runs for 2.4 s.
    const { taskId } = await client('h1').vm.create(vmId);
    const listed = (host: Host, scope?: { hostId?: string; fleet?: boolean }) =>
      client(host).getRunningTasks('*', 'glob', scope).then((tasks) => tasks.some((task) => task.id === taskId));
    // h2 mirrors the VM from the stream: once it knows the task, its answers can be told apart.
    await eventually('h2 mirrors the create', async () => ((await listed('h2', { fleet: true })) ? true : undefined));
    expect(await listed('h1')).toBe(true);
    expect(await listed('h2')).toBe(false);
    // Naming a host sends the call to its agent, which answers for itself.
    expect(await listed('h2', { hostId: 'h1' })).toBe(true);
    expect(await listed('h1', { hostId: 'h2' })).toBe(false);
    await expect(client('h1').call('Host.getRunningTasks', { scope: 'everywhere' })).rejects.toMatchObject({ code: ErrorCodes.InvalidParams });
    await statusOn('h1', vmId, 'Up', 'h1');
  });

  it('migrates a VM to another agent: Up on the destination, owned by it, with one unbroken history', async () => {
    const vmId = uniqueId('fleet-migrate');
    await client('h1').vm.create(vmId);
    await statusOn('h1', vmId, 'Up', 'h1');
    // Asked through h3, neither source nor destination.
    const migration = await client('h3').vm.migrate(vmId, 'h2');
    const job = await client('h3').waitForJob(migration.jobId, 30_000);
    expect(job.status).toBe('done');
    const info = await statusOn('h1', vmId, 'Up', 'h2');
    expect(info.hostId).toBe('h2');

    const steps = await history('h3', vmId);
    const revisions = steps.map((step) => step.revision);
    expect(revisions).toEqual(revisions.map((_, i) => i + 1));
    const handOver = steps.findIndex((step) => step.event.type === 'HOST_CHANGED');
    expect(handOver).toBeGreaterThan(0);
    expect(steps[handOver]?.event).toMatchObject({ from: 'h1', to: 'h2' });
    // Before the hand-over h1 wrote every record, after it h2 did; the migration task ends on h2.
    expect(steps.slice(0, handOver).every((step) => step.hostId === 'h1')).toBe(true);
    expect(steps.slice(handOver).every((step) => step.hostId === 'h2')).toBe(true);
    expect(steps.at(-1)).toMatchObject({ status: 'Up', taskStatus: 'finished', hostId: 'h2' });
    const verification = await client('h1').call<{ ok: boolean }>('History.verify', { alertName: `vdsm.VM.${vmId}` });
    expect(verification.ok).toBe(true);

    // The new owner takes calls, made anywhere.
    await client('h1').vm.pause(vmId);
    await statusOn('h3', vmId, 'Paused', 'h2');
  });

  it('shows a killed agent\'s VMs Unknown, and takes them back when it restarts, doing no work twice', async () => {
    const settled = uniqueId('fleet-kill-up');
    const busy = uniqueId('fleet-kill-busy');
    await client('h3').vm.create(settled);
    await statusOn('h3', settled, 'Up', 'h3');
    // A migration to a host with no agent is plain work of h3's: it is mid-way when h3 dies.
    await client('h3').vm.create(busy);
    await statusOn('h3', busy, 'Up', 'h3');
    await client('h3').call('VM.migrate', { vmId: busy, dstHost: 'outside' });
    await copyingMemory('h1', busy);

    await agents.get('h3')?.kill();
    const unknown = await statusOn('h1', settled, 'Unknown', 'h3');
    expect(unknown.hostId).toBe('h3');
    await statusOn('h2', busy, 'Unknown', 'h3');
    // Nobody else runs h3's VMs: a call for one is refused, not run elsewhere (asked by a client
    // that does not retry 105, as the library otherwise would until h3 is back).
    const once = await connect((agents.get('h1') as AgentProcess).url, { token: (agents.get('h1') as AgentProcess).token, unavailableRetryMs: 0 });
    const refused = await once.vm.pause(settled).catch((failure: unknown) => failure);
    await once.close();
    expect((refused as RpcError).code).toBe(ErrorCodes.Unavailable);
    expect((refused as RpcError).message).toMatch(/host h3, which is not responding/);

    await startHost('h3');
    await statusOn('h1', settled, 'Up', 'h3');
    // The migration's stage that cannot survive a restart fails as declared; it is not redone.
    const after = await statusOn('h2', busy, 'Up', 'h3');
    expect(after.operationInfo.lastError[0]).not.toBe(0);
    const steps = await history('h1', busy);
    const lost = steps.filter((step) => step.event.type === 'HOST_LOST');
    const returned = steps.filter((step) => step.event.type === 'HOST_RETURNED');
    expect(lost).toHaveLength(1);
    expect(returned).toHaveLength(1);
    expect(lost[0]).toMatchObject({ status: 'Unknown', hostId: 'h3' });
    expect(steps.filter((step) => step.event.type === 'MIGRATE')).toHaveLength(1);
    const verification = await client('h2').call<{ ok: boolean }>('History.verify', { alertName: `vdsm.VM.${busy}` });
    expect(verification.ok).toBe(true);
  }, 90_000);

  it('fences an agent paused past its lease: once it runs again, the stream refuses its writes', async () => {
    const vmId = uniqueId('fleet-stop');
    const h2 = agents.get('h2') as AgentProcess;
    // With a disk: a migration reports on it too, on its own subject, which must be fenced as well.
    await client('h2').vm.create(vmId, { disks: [{ diskId: 'system' }] });
    await statusOn('h2', vmId, 'Up', 'h2');
    // A migration out of the fleet: h2's driver reports on it every step while it runs.
    await client('h2').call('VM.migrate', { vmId, dstHost: 'outside' });
    await copyingMemory('h1', vmId);
    process.kill(h2.pid, 'SIGSTOP');
    try {
      await statusOn('h1', vmId, 'Unknown', 'h2');
    } finally {
      process.kill(h2.pid, 'SIGCONT');
    }
    // Back, h2 finds its lease taken: its in-flight reports are refused by the subject's
    // sequence, it takes the lease back and records HOST_RETURNED before anything else.
    await eventually('h2 returned', async () => ((await history('h1', vmId)).some((step) => step.event.type === 'HOST_RETURNED') ? true : undefined));
    await eventually('the VM settled on h2', async () => {
      const info = await client('h3').vm.getInfo(vmId);
      return info.hostId === 'h2' && !info.task ? info : undefined;
    });
    const steps = await history('h3', vmId);
    const lostAt = steps.findIndex((step) => step.event.type === 'HOST_LOST');
    const returnedAt = steps.findIndex((step) => step.event.type === 'HOST_RETURNED');
    expect(lostAt).toBeGreaterThan(0);
    expect(steps[lostAt]?.event).toMatchObject({ hostId: 'h2' });
    expect(steps[lostAt]?.event['by']).not.toBe('h2');
    // Nothing between the fence and the return: the zombie's writes never landed.
    expect(returnedAt).toBe(lostAt + 1);
    expect(steps[returnedAt]).toMatchObject({ hostId: 'h2' });
    const verification = await client('h1').call<{ ok: boolean }>('History.verify', { alertName: `vdsm.VM.${vmId}` });
    expect(verification.ok).toBe(true);
    // The disk's subject was fenced too: nothing landed there between its fence and h2's return.
    const disk = (await client('h3').call<{ steps: Step[] }>('History.get', { alertName: `vdsm.VM.${vmId}.Disk.system` })).steps;
    const diskFence = disk.find((step) => step.event.type === 'HOST_LOST');
    expect(diskFence).toMatchObject({ status: 'Unknown', event: { hostId: 'h2' } });
    const returnedSeq = steps[returnedAt]?.seq ?? 0;
    expect(disk.filter((step) => step.seq > (diskFence?.seq ?? 0) && step.seq < returnedSeq)).toEqual([]);
    expect((await client('h1').call<{ ok: boolean }>('History.verify', { alertName: `vdsm.VM.${vmId}.Disk.system` })).ok).toBe(true);
    // The lease epoch grew: h2 is a new incarnation of itself.
    const listed = await client('h1').call<{ hosts: Array<{ hostId: string; epoch: number; responsive: boolean }> }>('Host.list');
    expect(listed.hosts.find((host) => host.hostId === 'h2')).toMatchObject({ responsive: true });
    expect(listed.hosts.find((host) => host.hostId === 'h2')?.epoch).toBeGreaterThan(1);
  }, 90_000);

  it('loses no acknowledged call of any agent across kill -9 of the stream leader', async () => {
    const nc: NatsConnection = await connectNats(cluster.url, 'fleet-invariants');
    const acknowledged: Acknowledged = new Map();
    const refusals: number[] = [];
    let stop = false;
    const load = HOSTS.map(async (host, worker) => {
      for (let i = 0; !stop; i += 1) {
        const vmId = `fleet-load-${worker}-${i}`;
        try {
          const { taskId } = await client(host).vm.create(vmId);
          acknowledged.set(taskId, { alertName: `vdsm.VM.${vmId}`, methodName: 'VM.create' });
        } catch (error) {
          refusals.push(error instanceof RpcError ? error.code : -1);
          await sleep(100);
        }
      }
    });
    try {
      await sleep(1_000);
      const leader = await cluster.leaderOf('VDSM');
      await cluster.kill(leader);
      await sleep(6_000);
      await cluster.revive(leader);
      await sleep(1_000);
    } finally {
      stop = true;
      await Promise.all(load);
    }
    // Every agent's copy of the fleet says when all the work started is over: h1's, asked for every host's tasks.
    await eventually('no task running anywhere', async () => ((await client('h1').getRunningTasks('*', 'glob', { fleet: true })).length === 0 ? true : undefined), 60_000);
    try {
      expect(acknowledged.size).toBeGreaterThan(10);
      expect(refusals.filter((code) => code !== ErrorCodes.Unavailable)).toEqual([]);
      const { entities } = await checkStreamInvariants(nc, acknowledged);
      expect(entities).toBeGreaterThanOrEqual(acknowledged.size);
    } finally {
      await nc.close();
    }
  }, 90_000);
});
