// A 3-node cluster with the stream and snapshots at replicas 3: killing the stream's leader under
// load loses no acknowledged call, and while the cluster elects a new leader calls answer
// Unavailable (105) — never an internal error.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Agent } from '../src/agent.ts';
import { ErrorCodes } from '../src/domain/errors.ts';
import { DisconnectedError, RpcError } from '../src/client/errors.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { connectNats } from '../src/nats/connection.ts';
import { startClusterAgent, uniqueId } from './helpers/agent.ts';
import { NatsTestCluster } from './helpers/nats-cluster.ts';
import { checkStreamInvariants, type Acknowledged } from './helpers/stream-invariants.ts';

let cluster: NatsTestCluster;
let agent: Agent;
let host: OpstreamClient;

beforeAll(async () => {
  cluster = await NatsTestCluster.start(3);
  agent = await startClusterAgent(cluster.url);
  // Without the library's retries: this test counts the raw 105s of the election.
  host = await connect(agent.api.url, { token: agent.credentials.operatorToken, unavailableRetryMs: 0 });
}, 60_000);
afterAll(async () => {
  await host?.close();
  await agent?.stop();
  await cluster?.stop();
});

it('keeps every acknowledged call across kill -9 of the stream leader, answering 105 while there is none', async () => {
  const acknowledged: Acknowledged = new Map();
  const refusals: number[] = [];
  const leader = await cluster.leaderOf('VDSM');
  let killed = false;
  const started = Date.now();
  const load = async () => {
    while (Date.now() - started < 9_000) {
      const vmId = uniqueId('ha');
      try {
        const { taskId } = await host.vm.create(vmId);
        acknowledged.set(taskId, { alertName: `vdsm.VM.${vmId}`, methodName: 'VM.create' });
      } catch (error) {
        if (error instanceof RpcError) refusals.push(error.code);
        else if (!(error instanceof DisconnectedError)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      if (!killed && Date.now() - started > 1_500) {
        killed = true;
        await cluster.kill(leader);
      }
    }
  };
  await Promise.all([load(), load(), load()]);
  await cluster.revive(leader);
  // Every VM whose create was acknowledged finishes it; then the whole stream is checked.
  for (const deadline = Date.now() + 60_000; agent.runtime.runningTasks().length > 0; ) {
    if (Date.now() > deadline) throw new Error(`tasks still running: ${JSON.stringify(agent.runtime.runningTasks().map(({ alertName }) => alertName))}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(acknowledged.size).toBeGreaterThan(10);
  expect(refusals.filter((code) => code !== ErrorCodes.Unavailable)).toEqual([]);
  const nc = await connectNats(cluster.url, 'cluster-check');
  try {
    await checkStreamInvariants(nc, acknowledged);
  } finally {
    await nc.drain();
  }
  expect(await cluster.leaderOf('VDSM')).toBeTruthy();
}, 90_000);
