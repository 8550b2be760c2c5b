// A nats-server child process: started, awaited until ready, stopped gently or killed like a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
// Plain JS shared with the pre-install set-up (typed by its JSDoc): one place knows where the server is.
import { findNatsServer } from './server-binary.mjs';

const READY_LINE = 'Server is ready';

/** The nats-server binary to run, or a one-line error saying how to get one. */
export function natsServerBinary(): string {
  const found = findNatsServer();
  if (!found) {
    throw new Error('no nats-server 2.10+ found: run `node scripts/setup.mjs` or set NATS_SERVER_BIN');
  }
  return found;
}

export type ServerProcess = {
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<number | null>;
  /** Graceful stop (SIGTERM), then SIGKILL if it lingers. */
  stop(timeoutMs?: number): Promise<void>;
  /** Kills at once, as a crash would. */
  kill(): Promise<void>;
};

/**
 * Starts nats-server and resolves once it logs that it is ready. Its log goes to `logFile`
 * when given; the last lines are in the error when it dies before it is ready.
 */
export async function startServerProcess(
  args: string[],
  options: {
    cwd?: string;
    logFile?: string;
    readyTimeoutMs?: number;
    /** Own process group: a terminal's Ctrl-C then reaches only us, and we stop the server last. */
    detached?: boolean;
  } = {},
): Promise<ServerProcess> {
  const child = spawn(natsServerBinary(), args, {
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const log: WriteStream | undefined = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const recent: string[] = [];

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server not ready after ${options.readyTimeoutMs ?? 15_000} ms:\n${recent.join('')}`));
    }, options.readyTimeoutMs ?? 15_000);
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      log?.write(text);
      recent.push(text);
      if (recent.length > 20) recent.shift();
      if (recent.join('').includes(READY_LINE)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited (${code}) before it was ready:\n${recent.join('').trim()}`));
    });
  });
  return handle(child, exited, log);
}

function handle(child: ChildProcess, exited: Promise<number | null>, log: WriteStream | undefined): ServerProcess {
  const finish = async () => {
    await exited;
    log?.end();
  };
  return {
    pid: child.pid ?? -1,
    exited,
    async stop(timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return finish();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await finish();
      clearTimeout(timer);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await finish();
    },
  };
}
