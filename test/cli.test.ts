// The client commands as a user runs them: `opstream call`, `tasks`, `watch` (piped, so plain lines).
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent.ts';
import { parseParams } from '../src/cli/call.ts';
import { uniqueId } from './helpers/agent.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

const run = promisify(execFile);
let server: NatsTestServer;
let agent: Agent;

beforeAll(async () => {
  server = await NatsTestServer.start();
  agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 250 } });
});
afterAll(async () => {
  await agent?.stop();
  await server?.stop();
});

const env = () => ({ ...process.env, OPSTREAM_URL: agent.api.url, OPSTREAM_TOKEN: agent.credentials.operatorToken });
const cli = (...args: string[]) =>
  run('node', ['bin/opstream.js', ...args], { env: env() }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );

/** Starts `opstream watch` and resolves with its exit code and output once it ends. */
function watch(...args: string[]): { ready: Promise<void>; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn('node', ['bin/opstream.js', 'watch', ...args], { env: env() });
  let stdout = '';
  let stderr = '';
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (stderr.includes('waiting for an operation')) markReady();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr })),
  );
  return { ready, done };
}

describe('opstream call', () => {
  it('parses key=value pairs, JSON where it parses', () => {
    expect(parseParams(['vmId=a', 'memoryMiB=512', 'force=true', 'disks=["/a"]', 'note=hello world'])).toEqual({
      vmId: 'a',
      memoryMiB: 512,
      force: true,
      disks: ['/a'],
      note: 'hello world',
    });
    expect(() => parseParams(['vmId'])).toThrow(/expected key=value/);
  });

  it('prints the result as JSON, and a refused call as one line with its code', async () => {
    const vmId = uniqueId('call');
    const created = await cli('call', 'VM.create', `vmId=${vmId}`, 'memoryMiB=256');
    expect(created.code).toBe(0);
    const answer = JSON.parse(created.stdout) as { taskId: string; jobId: string };
    expect(answer).toEqual({ taskId: expect.any(String), jobId: answer.taskId });
    const refused = await cli('call', 'VM.cont', `vmId=${vmId}`);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toMatch(new RegExp(`^opstream: error 101: VM ${vmId} is (WaitForLaunch|Powering up|Up): cannot CONT`));
  });
});

describe('opstream tasks', () => {
  it('lists running tasks with redacted kwargs', async () => {
    const vmId = uniqueId('tasks');
    const { taskId } = await agent.runtime.call({ kind: 'VM', id: vmId }, 'VM.create', { vmId, token: 'abc' }, (task) => ({ type: 'CREATE', task, params: {} }));
    // Both at once, while the create (8 ticks of 250 ms) still runs.
    const [listed, table] = await Promise.all([cli('tasks', '--json'), cli('tasks', 'VM.create', '--on', 'methodName')]);
    const tasks = JSON.parse(listed.stdout) as Array<{ id: string; kwargs: Record<string, unknown> }>;
    expect(tasks.find((task) => task.id === taskId)?.kwargs).toEqual({ vmId, token: '<redacted>' });
    expect(table.stdout).toContain(taskId);
  });
});

describe('opstream watch', () => {
  it('shows progress and exits 0 when the watched operations end well', async () => {
    const vmId = uniqueId('watch_ok');
    const watcher = watch(`vdsm.VM.${vmId}`);
    await watcher.ready;
    await cli('call', 'VM.create', `vmId=${vmId}`);
    const { code, stdout, stderr } = await watcher.done;
    expect(code).toBe(0);
    expect(stdout).toMatch(/Creating · configuring · stage 1\/3/);
    expect(stdout).toMatch(/Running · \(up\)/);
    expect(stderr).toMatch(/1 operation ended, 0 with an error/);
  });

  it('exits 1 when an operation ends with an error', async () => {
    const vmId = uniqueId('watch_fail');
    const watcher = watch(`vdsm.VM.${vmId}`);
    await watcher.ready;
    await cli('call', 'VM.create', `vmId=${vmId}`);
    await cli('call', 'Sim.injectFault', `vmId=${vmId}`, 'fault=WORK_FAILURE');
    const { code, stdout } = await watcher.done;
    expect(code).toBe(1);
    expect(stdout).toMatch(/error 500: injected failure/);
  });
});
