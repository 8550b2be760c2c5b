// `opstream fleet` as a newcomer runs it: three nats-servers from cluster/*.conf and three agents
// on ports of their own; every agent answers, the stream is shared, and SIGTERM leaves no process.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { freePortRange } from './helpers/ports.ts';

type Fleet = { child: ChildProcess; exited: Promise<number | null>; output: () => string; apis: Map<string, string>; pids: number[] };

let dir: string;
let basePort: number;
let fleet: Fleet;
/** Every fleet this file started, so that nothing of them outlives it. */
const started: Fleet[] = [];
const clients = new Map<string, OpstreamClient>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'opstream-fleet-'));
  // The command reads the conf files from --dir, as a copy of the project would hold them.
  cpSync('cluster', join(dir, 'cluster'), { recursive: true });
  basePort = await freePortRange(12);
  fleet = await startFleet(dir, basePort);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([...clients.values()].map((client) => client.close()));
  // Whatever a failed test left: nothing of this file may outlive it.
  for (const each of started) {
    if (each.child.exitCode === null) each.child.kill('SIGKILL');
    for (const pid of each.pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

it('stops, on its next start, what a fleet killed outright left running', async () => {
  const killed = fleet;
  killed.child.kill('SIGKILL');
  await killed.exited;
  // Its children run in their own process groups: they outlive it.
  expect(killed.pids.filter(alive)).toHaveLength(6);
  fleet = await startFleet(dir, basePort);
  // Its servers at least (an agent whose terminal went away may have ended on a broken pipe).
  expect(fleet.output()).toMatch(/stopping [3-6] process\(es\) an earlier fleet left running/);
  expect(killed.pids.filter(alive)).toEqual([]);
  const token = readFileSync(join(dir, 'data', 'credentials', 'operator.token'), 'utf8').trim();
  for (const [host, api] of fleet.apis) clients.set(host, await connect(api, { token }));
}, 120_000);

const client = (host: string): OpstreamClient => {
  const found = clients.get(host);
  if (!found) throw new Error(`no agent ${host}; the command printed:\n${fleet.output()}`);
  return found;
};

it('starts three agents that answer, on one stream at replicas 3', async () => {
  expect([...fleet.apis.keys()].sort()).toEqual(['h1', 'h2', 'h3']);
  for (const host of ['h1', 'h2', 'h3']) expect(await client(host).getRunningTasks()).toEqual(expect.any(Array));
  const vmId = uniqueId('fleet');
  const { jobId } = await client('h1').vm.create(vmId);
  expect((await client('h1').waitForJob(jobId, 30_000)).status).toBe('done');
  expect((await client('h1').vm.getInfo(vmId)).status).toBe('Up');
  // h3 reads the same stream: the VM's whole history is there.
  const history = await client('h3').call<{ total: number; steps: Array<{ event?: unknown }> }>('History.get', { alertName: `vdsm.VM.${vmId}` });
  expect(history.total).toBeGreaterThan(1);
}, 60_000);

it('answers VM.getInfo on h3 for a VM created on h1, naming its host', async () => {
  const vmId = uniqueId('fleet');
  const { jobId } = await client('h1').vm.create(vmId);
  await client('h1').waitForJob(jobId, 30_000);
  expect(await client('h3').vm.getInfo(vmId)).toMatchObject({ status: 'Up', hostId: 'h1' });
}, 60_000);

it('stops every agent and server on SIGTERM, agents first', async () => {
  await Promise.allSettled([...clients.values()].map((each) => each.close()));
  clients.clear();
  fleet.child.kill('SIGTERM');
  expect(await fleet.exited).toBe(0);
  expect(fleet.pids).toHaveLength(6);
  expect(fleet.pids.filter(alive)).toEqual([]);
  const output = fleet.output();
  // Each agent said it was stopping before the command returned, i.e. before the servers went.
  for (const host of ['h1', 'h2', 'h3']) expect(output).toContain(`[${host}] stopping`);
}, 30_000);

it('gives every cluster node the same authorization as nats.conf', () => {
  const authorization = (file: string) => readFileSync(file, 'utf8').split('\nauthorization {')[1];
  expect(authorization('nats.conf')).toBeTruthy();
  for (const node of [1, 2, 3]) {
    const conf = readFileSync(`cluster/nats-${node}.conf`, 'utf8');
    expect(authorization(`cluster/nats-${node}.conf`)).toBe(authorization('nats.conf'));
    expect(conf).toContain('include "../data/credentials/nats-users.conf"');
    expect(conf).toContain(`store_dir: "./data/cluster/n${node}"`);
  }
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `opstream fleet` until it prints that it is ready; its children's pids from its output. */
async function startFleet(where: string, basePort: number): Promise<Fleet> {
  const child = spawn(process.execPath, ['bin/opstream.js', 'fleet', '--dir', where, '--base-port', String(basePort), '--sim-step-ms', '5'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, OPSTREAM_LOG: 'warn' },
  });
  let text = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fleet not ready in 100 s:\n${text}`)), 100_000);
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (/opstream fleet ready[\s\S]*Ctrl-C stops the agents/.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`fleet exited (${code}) before it was ready:\n${text}`));
    });
  });
  const apis = new Map([...text.matchAll(/^ {2}(h\d) {2}API (ws:\/\/\S+)/gm)].map((match) => [match[1] as string, match[2] as string]));
  const pids = [...text.matchAll(/\(pid (\d+)\)/g)].map((match) => Number(match[1]));
  const fleet = { child, exited, output: () => text, apis, pids };
  started.push(fleet);
  return fleet;
}
