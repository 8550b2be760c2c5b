// A real 3-node NATS cluster with JetStream for tests that need replication, in the spirit of
// nats.js's own test launcher: free ports picked up front (routes must name them), a store per
// node, ready once JetStream has a meta leader, and nodes that can be killed (SIGKILL) and
// revived on the same ports and store.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startServerProcess, type ServerProcess } from '../../src/nats/server-process.ts';
import { freePortRange } from './ports.ts';

type Node = { name: string; dir: string; clientPort: number; clusterPort: number; process?: ServerProcess };

export class NatsTestCluster {
  private constructor(
    readonly dir: string,
    private readonly nodes: Node[],
  ) {}

  /** Every node's URL, comma-separated: what clients and agents are given. */
  get url(): string {
    return this.nodes.map((node) => `nats://127.0.0.1:${node.clientPort}`).join(',');
  }

  get names(): string[] {
    return this.nodes.map((node) => node.name);
  }

  static async start(size = 3): Promise<NatsTestCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'opstream-cluster-'));
    const base = await freePortRange(size * 2);
    const ports = Array.from({ length: size * 2 }, (_, i) => base + i);
    const nodes: Node[] = Array.from({ length: size }, (_, i) => ({
      name: `n${i + 1}`,
      dir: join(dir, `n${i + 1}`),
      clientPort: ports[2 * i] as number,
      clusterPort: ports[2 * i + 1] as number,
    }));
    const cluster = new NatsTestCluster(dir, nodes);
    try {
      await Promise.all(nodes.map((node) => cluster.#launch(node)));
      await cluster.#jetStreamReady();
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** SIGKILL one node, as a crashed machine. */
  async kill(name: string): Promise<void> {
    await this.#node(name).process?.kill();
  }

  /** Starts a killed node again on its ports and store. */
  async revive(name: string): Promise<void> {
    await this.#launch(this.#node(name));
    await this.#jetStreamReady();
  }

  /** The node that leads `stream` now. */
  async leaderOf(stream: string): Promise<string> {
    const nc = await connect({ servers: this.url.split(','), reconnect: false });
    try {
      const info = await (await jetstreamManager(nc)).streams.info(stream);
      const leader = info.cluster?.leader;
      if (!leader) throw new Error(`stream ${stream} has no leader now`);
      return leader;
    } finally {
      await nc.close();
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map(async (node) => node.process?.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  #node(name: string): Node {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (!node) throw new Error(`no node ${name} in this cluster (${this.names.join(', ')})`);
    return node;
  }

  async #launch(node: Node): Promise<void> {
    const routes = this.nodes.filter((other) => other !== node).map((other) => `"nats-route://127.0.0.1:${other.clusterPort}"`);
    const config = join(this.dir, `${node.name}.conf`);
    writeFileSync(
      config,
      [
        `server_name: ${node.name}`,
        `listen: 127.0.0.1:${node.clientPort}`,
        `jetstream { store_dir: "${join(node.dir, 'store')}" }`,
        `cluster { name: opstream-test, listen: 127.0.0.1:${node.clusterPort}, routes: [${routes.join(', ')}] }`,
        'max_payload: 1MB',
      ].join('\n'),
    );
    node.process = await startServerProcess(['-c', config], { logFile: join(this.dir, `${node.name}.log`) });
  }

  /** Ready once JetStream answers: the cluster has elected a meta leader. */
  async #jetStreamReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nc = await connect({ servers: this.url.split(','), reconnect: false }).catch(() => undefined);
      try {
        if (nc) {
          await (await jetstreamManager(nc)).getAccountInfo();
          return;
        }
      } catch (error) {
        if (Date.now() > deadline) throw error;
      } finally {
        await nc?.close();
      }
      if (Date.now() > deadline) throw new Error('the cluster elected no JetStream meta leader in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
