// The client library sends again what is safe to send again when the agent answers 105
// Unavailable: reads, and writes as jobs (it gives each a jobId). Against a real 3-node cluster
// whose stream leader is killed under load, no call fails and no operation runs twice.
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertLog } from '../actors/alert-log.ts';
import { API_METHODS } from '../src/api/dispatcher.ts';
import type { Agent } from '../src/agent.ts';
import { JOB_METHODS, prepareCall, READ_METHODS } from '../src/client/retry-safe.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { DEFAULT_STREAM } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { startClusterAgent, uniqueId } from './helpers/agent.ts';
import { NatsTestCluster } from './helpers/nats-cluster.ts';
import { checkStreamInvariants, type Acknowledged } from './helpers/stream-invariants.ts';

describe('which calls are retry-safe', () => {
  it('knows every method the agent serves: reads, and writes that take a jobId', () => {
    // Connection-bound reads the subscription table renews itself.
    const bound = new Set(['Host.subscribe', 'Host.unsubscribe']);
    const reads = API_METHODS.filter((method) => method.access === 'read' && !bound.has(method.name)).map((method) => method.name);
    // A job write rejects a malformed jobId by name; other writes do not take one at all.
    const takesJobId = (name: string) => {
      const parsed = API_METHODS.find((method) => method.name === name)?.params.safeParse({ jobId: 'not-a-uuid' });
      return parsed?.success === false && parsed.error.issues.some((issue) => issue.path[0] === 'jobId');
    };
    const jobWrites = API_METHODS.filter((method) => method.access === 'write' && takesJobId(method.name)).map((method) => method.name);
    expect([...READ_METHODS].sort()).toEqual(reads.sort());
    expect([...JOB_METHODS].sort()).toEqual(jobWrites.sort());
  });

  it('gives a job write a jobId of its own, keeps the caller\'s, and leaves other calls as they are', () => {
    const given = randomUUID();
    const fresh = prepareCall('VM.pause', { vmId: 'a' }, true);
    expect(fresh).toMatchObject({ retrySafe: true, params: { vmId: 'a', jobId: expect.stringMatching(/^[0-9a-f-]{36}$/) } });
    expect(prepareCall('VM.pause', { vmId: 'a' }, true).params['jobId']).not.toBe(fresh.params['jobId']);
    expect(prepareCall('VM.pause', { vmId: 'a', jobId: given }, true)).toEqual({ retrySafe: true, params: { vmId: 'a', jobId: given } });
    expect(prepareCall('VM.pause', { vmId: 'a' }, false)).toEqual({ retrySafe: false, params: { vmId: 'a' } });
    expect(prepareCall('VM.getInfo', { vmId: 'a' }, true)).toEqual({ retrySafe: true, params: { vmId: 'a' } });
    expect(prepareCall('Job.cancel', { jobId: given }, true)).toEqual({ retrySafe: false, params: { jobId: given } });
    expect(prepareCall('Sim.injectFault', {}, true)).toEqual({ retrySafe: false, params: {} });
  });
});

describe('kill -9 of the stream leader under load', () => {
  let cluster: NatsTestCluster;
  let agent: Agent;
  let host: OpstreamClient;

  beforeAll(async () => {
    cluster = await NatsTestCluster.start(3);
    agent = await startClusterAgent(cluster.url);
    // The defaults: writes get a jobId, and 105 is retried for up to 60 s.
    host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  }, 60_000);
  afterAll(async () => {
    await host?.close();
    await agent?.stop();
    await cluster?.stop();
  });

  it('answers every call without the caller retrying, and runs each operation once', async () => {
    const acknowledged: Acknowledged = new Map();
    const leader = await cluster.leaderOf(DEFAULT_STREAM);
    const started = Date.now();
    let killed = false;
    // Each loop: create a VM, read its job until it ends, pause it, read again. Any error fails the test.
    const load = async () => {
      while (Date.now() - started < 9_000) {
        const vmId = uniqueId('retry');
        const alertName = `vdsm.VM.${vmId}`;
        const created = await host.vm.create(vmId);
        acknowledged.set(created.taskId, { alertName, methodName: 'VM.create' });
        expect((await host.waitForJob(created.jobId, 60_000)).status).toBe('done');
        const paused = await host.vm.pause(vmId);
        acknowledged.set(paused.taskId, { alertName, methodName: 'VM.pause' });
        expect((await host.waitForJob(paused.jobId, 60_000)).status).toBe('done');
        expect((await host.vm.getInfo(vmId)).status).toBe('Paused');
        if (!killed && Date.now() - started > 1_500) {
          killed = true;
          await cluster.kill(leader);
        }
      }
    };
    await Promise.all([load(), load(), load()]);
    expect(killed).toBe(true);
    // The leader loss was seen, and absorbed by the client.
    expect(host.unavailableRetries).toBeGreaterThan(0);
    await cluster.revive(leader);
    await expect.poll(() => cluster.leaderOf(DEFAULT_STREAM).catch(() => undefined), { timeout: 30_000, interval: 200 }).toBeTruthy();

    expect(acknowledged.size).toBeGreaterThan(10);
    const nc = await connectNats(cluster.url, 'retry-check');
    try {
      // Right after a leader change a read can end early or find no responder: read until the
      // cluster has settled and every acknowledged task is there (a lost one never is).
      await expect.poll(async () => (await tasksByCall(nc).catch(() => new Map())).size, { timeout: 30_000, interval: 500 }).toBe(acknowledged.size);
      // Once each: every VM has one create task and one pause task, whatever the client sent again.
      const twice = [...(await tasksByCall(nc))].filter(([, ids]) => ids.size > 1).map(([call]) => call);
      expect(twice).toEqual([]);
      await checkStreamInvariants(nc, acknowledged);
    } finally {
      await nc.drain();
    }
  }, 120_000);
});

/** Task ids per `alertName method`, over the whole stream. */
async function tasksByCall(nc: NatsConnection): Promise<Map<string, Set<string>>> {
  const log = await AlertLog.open(nc, DEFAULT_STREAM);
  const tasks = new Map<string, Set<string>>();
  for await (const raw of log.readAll()) {
    const record = log.decode(raw.message);
    if (!('alert' in record) || !record.alert.task) continue;
    const call = `${record.alert.alertName} ${record.alert.task.methodName}`;
    tasks.set(call, (tasks.get(call) ?? new Set()).add(record.alert.task.id));
  }
  return tasks;
}
