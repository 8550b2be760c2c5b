// `opstream fleet`: a local 3-node NATS cluster (cluster/nats-{1,2,3}.conf) and three agents
// (h1, h2, h3) with the stream at replicas 3, to try the fleet on one machine; Ctrl-C stops all.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '../nats/connection.ts';
import { ensureNatsServer } from '../nats/server-binary.mjs';
import { startServerProcess, type ServerProcess } from '../nats/server-process.ts';
import { ensureCredentials } from '../security/credentials.ts';
import { PROJECT_ROOT } from './paths.ts';

export type FleetOptions = {
  /** Holds cluster/nats-{1,2,3}.conf and data/ (stores, credentials, logs); nats-servers run here. */
  dir: string;
  /** Shift every port (see `layout`); without it, the ports the conf files name. */
  basePort?: number;
  simStepMs?: number;
};

const NODES = [1, 2, 3] as const;
const HOSTS = ['h1', 'h2', 'h3'] as const;
/** However children behave, a stop signal ends everything within this. */
const STOP_DEADLINE_MS = 15_000;
/** Each agent gets this long to stop cleanly (snapshots, checkpoint) before SIGKILL. */
const AGENT_STOP_MS = 8_000;
const SERVER_STOP_MS = 5_000;

type Ports = { client: number; route: number; http: number; api: number };

/**
 * Node i's ports. The defaults are the conf files' (clients 4222-4224, routes 6222-6224,
 * monitoring 8222-8224) and the agent's API default 4040-4042; `--base-port B` puts the twelve
 * of them at B…B+11 instead, so a second fleet or a test does not collide with the first.
 */
export function layout(node: number, basePort?: number): Ports {
  const i = node - 1;
  if (basePort === undefined) return { client: 4222 + i, route: 6222 + i, http: 8222 + i, api: 4040 + i };
  return { client: basePort + i, route: basePort + 3 + i, http: basePort + 6 + i, api: basePort + 9 + i };
}

type Child = { process: ChildProcess; exited: Promise<void> };
type Agent = { host: string; pid: number; api: string; page: string };

/** Starts the cluster and the agents, prints where they are, and stops them all on SIGINT/SIGTERM. */
export async function fleet(options: FleetOptions): Promise<void> {
  ensureNatsServer();
  const dir = resolve(options.dir);
  for (const node of NODES) {
    if (!existsSync(join(dir, 'cluster', `nats-${node}.conf`))) throw new Error(`${dir}/cluster/nats-${node}.conf not found (--dir names the directory that holds cluster/)`);
  }
  const credentials = ensureCredentials(join(dir, 'data', 'credentials'));
  mkdirSync(join(dir, 'data', 'cluster'), { recursive: true });
  const pidFile = join(dir, 'data', 'cluster', 'fleet.pids');
  await stopLeftovers(pidFile);
  const servers: ServerProcess[] = [];
  const agents: Agent[] = [];
  /** Every agent process, ready or not, so a failed start still stops the ones it began. */
  const children: Child[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      setTimeout(() => {
        console.error(`opstream fleet: not stopped after ${STOP_DEADLINE_MS / 1000} s; exiting anyway`);
        process.exit(1);
      }, STOP_DEADLINE_MS).unref();
      // Agents first: they drain and save snapshots through the servers, which must still be up.
      await Promise.all(children.map((child) => stopChild(child, AGENT_STOP_MS)));
      await Promise.all(servers.map((server) => server.stop(SERVER_STOP_MS)));
      rmSync(pidFile, { force: true });
    })();
    return stopping;
  };
  const onSignal = () => {
    if (!stopping) console.log('\nstopping the agents, then the nats-servers…');
    void stop().then(() => process.exit(0));
  };
  // `on`, not `once`: a second signal must not kill this process before it has stopped its children.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const urls = NODES.map((node) => `nats://127.0.0.1:${layout(node, options.basePort).client}`).join(',');
  // Children run in their own process groups, so a fleet killed outright leaves them: the pids
  // let the next start stop them instead of failing on taken ports.
  const remember = () => writeFileSync(pidFile, JSON.stringify([...servers.map((server) => server.pid), ...children.map((child) => child.process.pid ?? -1)]));
  try {
    await Promise.all(NODES.map(async (node) => {
      servers.push(await startNode(dir, node, options.basePort));
      remember();
    }));
    await jetStreamReady(urls, credentials.nkeyFiles.agent);
    console.log(`[fleet] cluster ready: ${urls} (JetStream has a meta leader)`);
    const startOne = async (index: number) =>
      agents.push(await startFleetAgent(index, urls, credentials.dir, options, (child) => {
        children.push(child);
        remember();
      }));
    // One agent creates the stream at replicas 3; the others then find it rather than race to create it.
    await startOne(0);
    await Promise.all([startOne(1), startOne(2)]);
  } catch (error) {
    await stop();
    throw error;
  }
  agents.sort((a, b) => a.host.localeCompare(b.host));
  const shown = (path: string) => {
    const near = relative(process.cwd(), path);
    return near.startsWith('..') ? path : near || '.';
  };
  console.log(
    [
      '',
      'opstream fleet ready: 3 nats-servers (one cluster, stream at replicas 3), 3 agents',
      ...agents.map((agent) => `  ${agent.host}  API ${agent.api}   page ${agent.page}   (pid ${agent.pid})`),
      `  NATS    ${urls}  (logs ${shown(join(dir, 'data', 'cluster'))}/n*.log)`,
      `  tokens  ${shown(credentials.dir)}/operator.token, viewer.token (shared by all three agents)`,
      `  try     npx opstream call VM.create vmId=web --url ${agents[0]?.api ?? ''}`,
      `          npx opstream call VM.getInfo vmId=web --url ${agents[2]?.api ?? ''}`,
      '  Ctrl-C stops the agents, then the servers',
    ].join('\n'),
  );
}

/** One nats-server from its conf file, run in `dir` (its store_dir is relative), ports as `layout` says. */
async function startNode(dir: string, node: number, basePort: number | undefined): Promise<ServerProcess> {
  const ports = layout(node, basePort);
  const routes = NODES.filter((other) => other !== node).map((other) => `nats-route://127.0.0.1:${layout(other, basePort).route}`);
  // Flags override the conf file's values, so the file stays the one description of the node.
  const overrides = basePort === undefined
    ? []
    : ['-p', String(ports.client), '-m', String(ports.http), '--cluster', `nats://127.0.0.1:${ports.route}`, '--routes', routes.join(',')];
  const server = await startServerProcess(['-c', join('cluster', `nats-${node}.conf`), ...overrides], {
    cwd: dir,
    logFile: join(dir, 'data', 'cluster', `n${node}.log`),
    // Own process group: Ctrl-C reaches this command, which stops the servers after the agents.
    detached: true,
  });
  console.log(`[n${node}] nats-server ready on 127.0.0.1:${ports.client} (pid ${server.pid})`);
  return server;
}

/** The cluster answers JetStream requests once its nodes have elected a meta leader. */
async function jetStreamReady(urls: string, nkeyFile: string, timeoutMs = 30_000): Promise<void> {
  const nc = await connectNats(urls, 'opstream-fleet', { nkeyFile });
  try {
    for (const deadline = Date.now() + timeoutMs; ; await sleep(200)) {
      try {
        // jetstreamManager itself asks the cluster, so it belongs inside the retry.
        await (await jetstreamManager(nc)).getAccountInfo();
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`the cluster elected no JetStream meta leader in ${timeoutMs / 1000} s: ${String(error)}`, { cause: error });
      }
    }
  } finally {
    await nc.close();
  }
}

/** `opstream start --host-id hN --replicas 3` as a child, its output prefixed; resolves once it is ready. */
async function startFleetAgent(index: number, urls: string, credentialsDir: string, options: FleetOptions, started: (child: Child) => void): Promise<Agent> {
  const host = HOSTS[index] as string;
  const port = layout(index + 1, options.basePort).api;
  const args = ['start', '--host-id', host, '--replicas', '3', '--port', String(port), '--credentials-dir', credentialsDir];
  if (options.simStepMs !== undefined) args.push('--sim-step-ms', String(options.simStepMs));
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'opstream.js'), ...args], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NATS_URL: urls, OPSTREAM_NATS_NKEY: join(credentialsDir, 'agent.nk') },
    // Own process group, as the servers: this command decides the order things stop in.
    detached: true,
  });
  const exited = new Promise<void>((done) =>
    child.once('exit', (code, signal) => {
      // Said also when it was not asked to stop: the others keep running, and the user should know.
      console.log(`[${host}] exited (${signal ?? `code ${code}`})`);
      done();
    }),
  );
  started({ process: child, exited });
  const ready = new Promise<Agent>((done, fail) => {
    let api: string | undefined;
    const timer = setTimeout(() => fail(new Error(`${host} not ready in 60 s`)), 60_000);
    const onLine = (line: string) => {
      console.log(`[${host}] ${line}`);
      api ??= /^\s*API\s+(wss?:\/\/\S+)/.exec(line)?.[1];
      const page = /^\s*page\s+(https?:\/\/\S+)/.exec(line)?.[1];
      if (api && page) {
        clearTimeout(timer);
        done({ host, pid: child.pid ?? -1, api, page });
      }
    };
    for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on('line', onLine);
    void exited.then(() => {
      clearTimeout(timer);
      fail(new Error(`${host} exited before it was ready (its output is above)`));
    });
  });
  return ready;
}

async function stopChild({ process: child, exited }: Child, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

/** Stops what a fleet killed outright left running (only processes that are still ours). */
async function stopLeftovers(pidFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pids = (JSON.parse(readFileSync(pidFile, 'utf8')) as unknown[]).filter((pid): pid is number => Number.isInteger(pid) && (pid as number) > 0);
  rmSync(pidFile, { force: true });
  const ours = (pid: number) => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes('nats-server') || cmdline.includes('opstream.js');
    } catch {
      return false;
    }
  };
  const left = pids.filter(ours);
  if (!left.length) return;
  console.log(`[fleet] stopping ${left.length} process(es) an earlier fleet left running: ${left.join(', ')}`);
  for (const pid of left) process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < 10_000 && left.some(ours); waited += 100) await sleep(100);
  for (const pid of left.filter(ours)) process.kill(pid, 'SIGKILL');
}
