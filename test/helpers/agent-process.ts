// The agent as a real process (`opstream start`), so a test can kill -9 it like a crash would.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let shared: string | undefined;
/** One credentials directory per test file: every agent it spawns signs with the same key. */
function sharedCredentialsDir(): string {
  shared ??= mkdtempSync(join(tmpdir(), 'opstream-credentials-'));
  return shared;
}

export type AgentProcess = {
  url: string;
  /** The operator token from the agent's credentials directory. */
  token: string;
  credentialsDir: string;
  pid: number;
  /** SIGKILL: no shutdown code runs. */
  kill(): Promise<void>;
  /** SIGTERM: a clean shutdown (snapshots, checkpoint). */
  stop(): Promise<void>;
  /** How the process ended: its exit code, or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

/** Agents spawned with the same `credentialsDir` share identities, as restarts of one agent do. */
export async function spawnAgent(natsUrl: string, extraArgs: string[] = [], credentialsDir = sharedCredentialsDir()): Promise<AgentProcess> {
  const child = spawn(
    process.execPath,
    ['bin/opstream.js', 'start', '--nats-url', natsUrl, '--port', '0', '--credentials-dir', credentialsDir, ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OPSTREAM_LOG: 'warn' } },
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`agent not ready in 20 s:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /API\s+(ws:\/\/\S+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`agent exited before it was ready:\n${output}`));
    });
  });
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  const token = readFileSync(join(credentialsDir, 'operator.token'), 'utf8').trim();
  return { url, token, credentialsDir, pid: child.pid ?? -1, kill: () => signal('SIGKILL'), stop: () => signal('SIGTERM'), exited };
}

