// A real nats-server per test file: the server picks free ports (`-1`), reports them through
// ports_file_dir, keeps JetStream in its own temp store, and can be restarted on the same ports and
// store to prove what survives.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startServerProcess, type ServerProcess } from '../../src/nats/server-process.ts';

type Ports = { nats: string[]; monitoring?: string[] };

export class NatsTestServer {
  private constructor(
    readonly dir: string,
    private process: ServerProcess,
    readonly port: number,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<NatsTestServer> {
    const dir = mkdtempSync(join(tmpdir(), 'opstream-nats-'));
    const process = await launch(dir, -1);
    try {
      return new NatsTestServer(dir, process, await readPort(dir, process.pid));
    } catch (error) {
      await process.kill();
      throw error;
    }
  }

  /** Stops gracefully (SIGTERM) and starts again on the same port and store. */
  async restart(): Promise<void> {
    await this.process.stop();
    this.process = await launch(this.dir, this.port);
    await this.#jetStreamReady();
  }

  /** SIGKILL, as a crash would; `restart` brings it back on the same store. */
  async kill(): Promise<void> {
    await this.process.kill();
  }

  /** Starts again after `kill` on the same port and store. */
  async revive(): Promise<void> {
    this.process = await launch(this.dir, this.port);
    await this.#jetStreamReady();
  }

  /** A restarted server says it is ready before JetStream has reloaded its streams. */
  async #jetStreamReady(timeoutMs = 15_000): Promise<void> {
    const nc = await connect({ servers: this.url, reconnect: false });
    try {
      const jsm = await jetstreamManager(nc);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          await jsm.getAccountInfo();
          return;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    } finally {
      await nc.close();
    }
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function launch(dir: string, port: number): Promise<ServerProcess> {
  for (const name of readdirSync(dir)) if (name.endsWith('.ports')) rmSync(join(dir, name));
  const config = join(dir, 'server.conf');
  writeFileSync(
    config,
    [
      `listen: 127.0.0.1:${port}`,
      `ports_file_dir: "${dir}"`,
      `jetstream { store_dir: "${join(dir, 'store')}" }`,
      'max_payload: 1MB',
    ].join('\n'),
  );
  return startServerProcess(['-c', config], { logFile: join(dir, 'server.log') });
}

/**
 * The client port from the ports file, which the server writes just after it says it is ready —
 * and not atomically: the file can exist and still be empty or half written for a moment.
 */
async function readPort(dir: string, pid: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const file = readdirSync(dir).find((name) => name.endsWith(`_${pid}.ports`));
    const url = file ? parsePorts(readFileSync(join(dir, file), 'utf8'))?.nats[0] : undefined;
    if (url) return Number(new URL(url).port);
    if (Date.now() > deadline) throw new Error(`nats-server ${pid} wrote no readable ports file in ${dir}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function parsePorts(text: string): Ports | undefined {
  try {
    return JSON.parse(text) as Ports;
  } catch {
    return undefined;
  }
}
