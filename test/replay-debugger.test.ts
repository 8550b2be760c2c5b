// The replay debugger over a recorded history (test/fixtures/histories), on today's machine and
// on one changed on purpose, as a library and as the `opstream replay` command.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { MACHINES, type MachineDefinition } from '../machines/index.ts';
import { vmMachine } from '../machines/vm.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { steps, verify } from '../src/replay/debugger.ts';
import { importHistory } from '../src/replay/history.ts';
import { startTestAgent, uniqueId, type TestAgent } from './helpers/agent.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

const run = promisify(execFile);
const FIXTURE = new URL('./fixtures/histories/vm-lifecycle.json', import.meta.url).pathname;

/** Today's VM machine with one change: a pause lands in Paused at once, skipping Pausing. */
function changedVmMachine(): MachineDefinition {
  const config = vmMachine.config;
  const states = config.states ?? {};
  const up = states['Up'] ?? {};
  const machine = createMachine(
    {
      ...config,
      states: { ...states, Up: { ...up, on: { ...(up.on as object), PAUSE: { target: 'Paused', actions: 'beginTask' } } } },
    },
    vmMachine.implementations,
  ) as unknown as MachineDefinition['machine'];
  return { ...MACHINES[EntityKinds.VM], machine };
}

describe('replay debugger on a recorded history', () => {
  it('reproduces the history on today\'s machine', async () => {
    const history = await importHistory(FIXTURE);
    const result = verify(history);
    expect(result).toEqual({ ok: true, verified: history.alerts.length, machine: { id: 'vm', version: 1 } });
  });

  it('finds the first divergence when the machine is changed on purpose', async () => {
    const history = await importHistory(FIXTURE);
    const pauseAt = history.alerts.find(({ alert }) => alert.event.type === 'PAUSE');
    const result = verify(history, changedVmMachine());
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.divergence).toMatchObject({ seq: pauseAt?.seq, recorded: 'Pausing', recomputed: 'Paused', event: { type: 'PAUSE' } });
    expect(result.verified).toBe(history.alerts.indexOf(pauseAt as never));
  });

  it('travels in time: steps stop at --to, each with its from and to state', async () => {
    const history = await importHistory(FIXTURE);
    const upAt = history.alerts.find(({ alert }) => alert.status === 'Up');
    const shown = steps(history, upAt?.seq);
    expect(shown.at(-1)).toMatchObject({ seq: upAt?.seq, from: 'PoweringUp', to: 'Up' });
    expect(shown[0]).toMatchObject({ from: null, to: 'WaitForLaunch', event: { type: 'CREATE' } });
    expect(shown.every((step, i) => i === 0 || step.from === shown[i - 1]?.to)).toBe(true);
  });

  it('rejects a file that is not a history, naming the problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opstream-history-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ format: 'opstream-history/1', alertName: 'vdsm.VM.x', exportedAt: 'now', alerts: [{ seq: 0 }] }));
    await expect(importHistory(bad)).rejects.toThrow(/not an opstream history file: alerts\.0\.seq/);
    await expect(importHistory(join(dir, 'missing.json'))).rejects.toThrow(/cannot read history file/);
  });
});

describe('opstream replay (the command)', () => {
  let server: NatsTestServer;
  let agent: TestAgent;
  beforeAll(async () => {
    server = await NatsTestServer.start();
    agent = await startTestAgent(server.url);
  });
  afterAll(async () => {
    await agent?.close();
    await server?.stop();
  });

  const cli = (...args: string[]) =>
    run('node', ['bin/opstream.js', 'replay', ...args], { env: { ...process.env, NATS_URL: server.url, OPSTREAM_HISTORY_KEY: agent.historyKeyFile } }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
    );

  it('prints the table and verifies an imported history offline', async () => {
    const { code, stdout } = await cli('--import', FIXTURE, '--verify');
    expect(code).toBe(0);
    expect(stdout).toMatch(/vdsm\.VM\.best_vm: 23 alerts/);
    expect(stdout).toMatch(/MigrationSource\.configuring → MigrationSource\.copyingMemory/);
    expect(stdout).toMatch(/verified: today's machine \(vm v1\) reproduces all 23 alerts/);
  });

  it('exports a live entity\'s history and replays it as JSON up to a sequence', async () => {
    const id = uniqueId('cli');
    const vm = { kind: EntityKinds.VM, id };
    await agent.runtime.call(vm, 'VM.create', { vmId: id }, (task) => ({ type: 'CREATE', task, params: {} }));
    const actor = await agent.runtime.existing(vm);
    while (actor.view().status !== 'Up') await new Promise((resolve) => setTimeout(resolve, 5));
    const file = join(mkdtempSync(join(tmpdir(), 'opstream-export-')), 'history.json');
    const exported = await cli(`vdsm.VM.${id}`, '--export', file, '--json');
    expect(exported.code).toBe(0);
    const live = JSON.parse(exported.stdout) as { steps: Array<{ seq: number }> };
    const imported = await importHistory(file);
    expect(imported.alerts.map(({ seq }) => seq)).toEqual(live.steps.map(({ seq }) => seq));

    const to = live.steps[2]?.seq ?? 0;
    const partial = await cli('--import', file, '--to', String(to), '--json', '--verify');
    const parsed = JSON.parse(partial.stdout) as { steps: Array<{ seq: number }>; verification: { ok: boolean; verified: number } };
    expect(parsed.steps.map(({ seq }) => seq)).toEqual(live.steps.slice(0, 3).map(({ seq }) => seq));
    expect(parsed.verification).toMatchObject({ ok: true, verified: 3 });
  });

  it('says in one line what was wrong', async () => {
    const unknown = await cli('vdsm.VM.nobody_here');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim()).toMatch(/^opstream: error 100: vdsm\.VM\.nobody_here has no history in stream VDSM$/);
    const notAName = await cli('VM.best_vm');
    expect(notAName.stderr.trim()).toMatch(/is not an alert name/);
  });

  it('exits 1 when a history diverges', async () => {
    const history = await importHistory(FIXTURE);
    const pause = history.alerts.find(({ alert }) => alert.event.type === 'PAUSE');
    if (pause) pause.alert.state = 'Paused'; // as if it had been recorded by another machine
    const file = join(mkdtempSync(join(tmpdir(), 'opstream-diverged-')), 'history.json');
    writeFileSync(file, JSON.stringify(history));
    const { code, stdout } = await cli('--import', file, '--verify');
    expect(code).toBe(1);
    expect(stdout).toMatch(new RegExp(`DIVERGES at sequence ${pause?.seq}`));
    expect(stdout).toMatch(/recorded +Paused/);
    expect(stdout).toMatch(/recomputed +Pausing/);
  });
});

