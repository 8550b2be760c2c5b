// `opstream viz`: every machine exports as SVG (laid out by elkjs), Mermaid, and a JSON config
// that XState itself accepts and that behaves like the machine it came from.
import { spawnSync } from 'node:child_process';
import { createMachine, initialTransition, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { resolveKind, vizOutput } from '../src/cli/viz.ts';
import { describeDefinition, describeMachine, machineKinds } from '../src/viz/describe.ts';
import { layoutMachine } from '../src/viz/layout.ts';
import { renderMermaid } from '../src/viz/mermaid.ts';
import { renderSvg } from '../src/viz/svg.ts';
import type { StateDescription } from '../src/viz/machine-types.ts';

const allPaths = (state: StateDescription): string[] => [state.path, ...state.states.flatMap(allPaths)].filter(Boolean);

describe('opstream viz', () => {
  it.each(machineKinds())('draws every state of %s in the SVG', async (kind) => {
    const svg = await vizOutput(kind, 'svg');
    expect(svg.startsWith('<svg')).toBe(true);
    for (const path of allPaths(describeMachine(kind).root)) expect(svg).toContain(`data-path="${path}"`);
    const viewBox = /viewBox="0 0 (\d+) (\d+)"/.exec(svg);
    expect(Number(viewBox?.[1])).toBeGreaterThan(100);
  });

  it('labels transitions with their events and prints status and resume policy', async () => {
    const svg = await vizOutput('VM', 'svg');
    expect(svg).toMatch(/data-event="PAUSE" data-source="Up" data-target="Pausing"/);
    expect(svg).toContain('status: Migration Source');
    expect(svg).toContain('on resume: fail');
  });

  it('writes Mermaid with nested states and labelled transitions', async () => {
    const mermaid = await vizOutput('vm', 'mermaid');
    expect(mermaid).toMatch(/^stateDiagram-v2\n/);
    expect(mermaid).toContain('state "MigrationSource" as MigrationSource {');
    expect(mermaid).toContain('Up --> Pausing : PAUSE');
    expect(mermaid).toContain('any_state --> PoweringDown : DESTROY');
  });

  it('exports a JSON config XState accepts and that runs like the machine', async () => {
    const config = JSON.parse(await vizOutput('VM', 'json')) as Parameters<typeof createMachine>[0];
    const imported = createMachine(config);
    let [snapshot] = initialTransition(imported);
    const events = ['CREATE', 'WORK_DONE', 'WORK_DONE', 'PAUSE', 'WORK_DONE', 'CONT', 'WORK_DONE', 'MIGRATE', 'WORK_DONE'];
    const visited: unknown[] = [];
    for (const type of events) {
      [snapshot] = transition(imported, snapshot, { type });
      visited.push(snapshot.value);
    }
    expect(visited).toEqual(['WaitForLaunch', 'PoweringUp', 'Up', 'Pausing', 'Paused', 'Resuming', 'Up', { MigrationSource: 'configuring' }, { MigrationSource: 'copyingMemory' }]);
    expect(imported.getStateNodeById('vm.Paused').meta).toMatchObject({ status: 'Paused' });
  });

  it('accepts a kind by machine id and names the kinds for an unknown one', () => {
    expect(resolveKind('image')).toBe('Storage.Image');
    expect(() => resolveKind('toaster')).toThrow(/no machine for "toaster"; kinds: VM, VM.Disk, Storage.Image/);
  });

  it('runs from the command line', () => {
    const result = spawnSync(process.execPath, ['bin/opstream.js', 'viz', 'Gluster.Volume', '--format', 'mermaid'], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^stateDiagram-v2/);
    const bad = spawnSync(process.execPath, ['bin/opstream.js', 'viz', 'VM', '--format', 'png'], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/png/);
  });
});

describe('state meta the diagram shows', () => {
  // A machine shaped like the job machines to come: a cancel policy in each state's meta.
  const jobMachine = createMachine({
    id: 'job',
    initial: 'running',
    states: {
      running: { meta: { status: 'running', onResume: 'continue', cancel: 'revert' }, on: { CANCEL: 'aborting', DONE: 'done' } },
      aborting: { meta: { status: 'aborting', cancel: { policy: 'refuse', reason: 'already aborting' } }, on: { ABORTED: 'aborted' } },
      aborted: { type: 'final', meta: { status: 'aborted' } },
      done: { type: 'final', meta: { status: 'done' } },
    },
  });
  const description = describeDefinition({ kind: 'Job' as never, machine: jobMachine, version: 1 });

  it('prints each state\'s cancel policy, whether a word or an object with a policy', async () => {
    const svg = renderSvg(await layoutMachine(description));
    expect(svg).toContain('on cancel: revert');
    expect(svg).toContain('on cancel: refuse');
    expect(svg).toMatch(/class="state final" data-path="aborted"/);
    expect(renderMermaid(description)).toContain('running : on cancel: revert');
  });
});
