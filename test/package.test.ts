// The package as a user meets it: `npm pack`, the tarball installed into a scratch project, a
// TypeScript program that imports `opstream` type-checked by tsc and run against an agent started
// from the installed package's own bin (dist/, no tsx, no sources) on its own nats-server.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsTestServer } from './helpers/nats-server.ts';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '..');
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let scratch: string;
let server: NatsTestServer;
let agent: ChildProcess | undefined;
let agentUrl: string;

/** What a user writes: the client, its types, and the agent's types from the subpath export. */
const PROGRAM = `
import { connect, isOperationComplete, RpcError, type AlertNotification } from 'opstream';
import type { AgentOptions } from 'opstream/agent';

const options: Pick<AgentOptions, 'port'> = { port: 0 };
const host = await connect(process.argv[2] ?? '', { token: process.argv[3] });
const vmId = 'pkg_' + process.pid;
await host.subscribe('vdsm.VM.' + vmId);
await host.vm.create(vmId, { memoryMiB: 64 });
const seen: AlertNotification[] = [];
for (;;) {
  const event = await host.waitForEvent('vdsm.VM.' + vmId, 10_000);
  seen.push(event);
  if (event.operationInfo.extraData['state'] === 'up' && isOperationComplete(event.operationInfo)) break;
}
let refused = '';
try {
  await host.vm.cont(vmId);
} catch (error) {
  if (error instanceof RpcError) refused = error.message;
}
await host.close();
console.log(JSON.stringify({ port: options.port, descriptions: seen.map((e) => e.operationInfo.operationDescription), refused }));
`;

/** A type error the compiler must catch, proving the package's types are read, not `any`. */
const WRONG = `
import { connect } from 'opstream';
const host = await connect('ws://127.0.0.1:1/rpc');
const n: number = await host.vm.getInfo('x');
`;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'opstream-pkg-'));
  await run(npm, ['pack', '--pack-destination', scratch, '--silent'], { cwd: REPO, maxBuffer: 16 << 20 });
  const tarball = readdirSync(scratch).find((name) => name.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack left no tarball in ${scratch}`);
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  writeFileSync(
    join(scratch, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, types: ['node'], outDir: 'out' },
      files: ['main.ts'],
    }),
  );
  writeFileSync(join(scratch, 'main.ts'), PROGRAM);
  await run(npm, ['install', `./${tarball}`, '@types/node@20', '--prefer-offline', '--no-audit', '--no-fund', '--silent'], {
    cwd: scratch,
    maxBuffer: 16 << 20,
  });
  server = await NatsTestServer.start();
}, 240_000);

afterAll(async () => {
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    const exited = new Promise((resolve) => agent?.once('exit', resolve));
    agent.kill('SIGTERM');
    await exited;
  }
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships the build, not the sources or the tests', () => {
    const installed = join(scratch, 'node_modules', 'opstream');
    const shipped = readdirSync(installed);
    expect(shipped).toEqual(expect.arrayContaining(['bin', 'dist', 'nats.conf', 'package.json']));
    for (const source of ['src', 'actors', 'machines', 'test', 'bench', 'scripts']) expect(shipped).not.toContain(source);
    expect(readdirSync(join(installed, 'dist', 'src'))).toContain('index.d.ts');
  });

  it('type-checks a program that imports opstream and opstream/agent', async () => {
    await expect(run(process.execPath, [TSC, '-p', '.'], { cwd: scratch })).resolves.toBeDefined();
  });

  it('rejects a program that misuses the types', async () => {
    writeFileSync(join(scratch, 'wrong.ts'), WRONG);
    const failed = await run(process.execPath, [TSC, '--noEmit', '--strict', '--module', 'nodenext', '--types', 'node', 'wrong.ts'], { cwd: scratch }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? '',
    );
    expect(failed).toMatch(/wrong\.ts.*TS2322/);
  });

  it('starts the agent from the installed bin (dist/, no tsx)', async () => {
    const bin = join(scratch, 'node_modules', 'opstream', 'bin', 'opstream.js');
    agent = spawn(process.execPath, [bin, 'start', '--nats-url', server.url, '--port', '0', '--credentials-dir', join(scratch, 'credentials')], {
      cwd: scratch,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OPSTREAM_LOG: 'warn' },
    });
    agentUrl = await new Promise<string>((resolve, reject) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const match = /API\s+(ws:\/\/\S+)/.exec(output);
        if (match?.[1]) resolve(match[1]);
      };
      agent?.stdout?.on('data', onData);
      agent?.stderr?.on('data', onData);
      agent?.once('exit', (code) => reject(new Error(`the installed agent exited (${code}) before it was ready:\n${output}`)));
    });
    expect(agentUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/rpc$/);
  }, 30_000);

  it('runs the compiled program against that agent', async () => {
    const token = readFileSync(join(scratch, 'credentials', 'operator.token'), 'utf8').trim();
    const { stdout } = await run(process.execPath, [join(scratch, 'out', 'main.js'), agentUrl, token], { cwd: scratch });
    const result = JSON.parse(stdout) as { port: number; descriptions: string[]; refused: string };
    expect(result.descriptions[0]).toBe('Creating');
    expect(result.descriptions.at(-1)).toBe('Running');
    expect(result.refused).toMatch(/cannot CONT/);
  }, 30_000);
});
