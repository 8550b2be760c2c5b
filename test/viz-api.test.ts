// The visualizer's read methods and page, against a real agent on a real nats-server: machines as
// data, the entity listing, history with time travel and verification, and the served page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/domain/errors.ts';
import type { MachineDescription, StateDescription } from '../src/viz/machine-types.ts';
import { RpcError } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { publishDivergedHistory } from './helpers/diverged-history.ts';
import { startStack, type TestStack } from './helpers/stack.ts';

let stack: TestStack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.stop());

const call = <T>(method: string, params: Record<string, unknown> = {}) => stack.host.call<T>(method, params);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForStatus(vmId: string, status: string): Promise<void> {
  for (let i = 0; i < 400; i += 1) {
    const info = await call<{ status: string }>('VM.getInfo', { vmId });
    if (info.status === status) return;
    await sleep(10);
  }
  throw new Error(`${vmId} never reached ${status}`);
}

async function errorOf(promise: Promise<unknown>): Promise<RpcError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(RpcError);
  return error as RpcError;
}

const find = (state: StateDescription, path: string): StateDescription | undefined =>
  state.path === path ? state : state.states.map((child) => find(child, path)).find(Boolean);

describe('Machine.list and Machine.describe', () => {
  it('lists every kind the agent runs, with the alert prefix to recognise its entities', async () => {
    const kinds = await call<{ kind: string; id: string; alertPrefix: string; alertPattern: string }[]>('Machine.list');
    expect(kinds.map((kind) => kind.kind)).toEqual(['VM', 'VM.Disk', 'Storage.Image', 'Storage.Connection', 'Gluster.Volume', 'Job']);
    expect(kinds[0]).toMatchObject({ id: 'vm', alertPrefix: 'vdsm.VM.', alertPattern: 'vdsm.VM.*' });
    expect(kinds[1]).toMatchObject({ id: 'vmDisk', alertPattern: 'vdsm.VM.*.Disk.*' });
  });

  it('describes the VM machine from its definition: nesting, events, status and resume policy', async () => {
    const vm = await call<MachineDescription>('Machine.describe', { kind: 'VM' });
    expect(vm.root.initial).toBe('Down');
    const up = find(vm.root, 'Up');
    expect(up?.meta).toMatchObject({ status: 'Up' });
    expect(up?.transitions.find((t) => t.event === 'PAUSE')).toMatchObject({ targets: ['Pausing'], kind: 'external' });
    const copying = find(vm.root, 'MigrationSource.copyingMemory');
    expect(copying?.meta).toMatchObject({ status: 'Migration Source', onResume: 'fail' });
    expect(find(vm.root, 'MigrationSource')?.initial).toBe('MigrationSource.configuring');
    // Progress stays in the state; a destroy while down is refused there.
    expect(find(vm.root, 'Pausing')?.transitions.find((t) => t.event === 'WORK_PROGRESS')?.kind).toBe('internal');
    expect(find(vm.root, 'Down')?.transitions.find((t) => t.event === 'DESTROY')?.kind).toBe('forbidden');
    expect(vm.root.transitions.find((t) => t.event === 'DESTROY')?.targets).toEqual(['PoweringDown']);
  });

  it('names the kinds when asked for one that has no machine', async () => {
    const error = await errorOf(call('Machine.describe', { kind: 'Toaster' }));
    expect(error.code).toBe(ErrorCodes.InvalidParams);
    expect(error.message).toMatch(/no machine for kind "Toaster"; kinds: VM, VM.Disk, Storage.Image/);
  });
});

describe('History.list, History.get and History.verify', () => {
  const vmId = uniqueId('hist');
  const alertName = `vdsm.VM.${vmId}`;

  beforeAll(async () => {
    await call('VM.create', { vmId });
    await waitForStatus(vmId, 'Up');
    await call('VM.pause', { vmId });
    await waitForStatus(vmId, 'Paused');
  });

  it('lists the entity with its status, state and last sequence', async () => {
    const listed = await call<{ alertName: string; status: string; state: unknown; seq: number }[]>('History.list', { filter: `vdsm.VM.${vmId}` });
    const info = await call<{ seq: number }>('VM.getInfo', { vmId });
    expect(listed).toEqual([expect.objectContaining({ alertName, kind: 'VM', id: vmId, status: 'Paused', state: 'Paused', seq: info.seq })]);
  });

  it('refuses a filter that does not compile, as Host.subscribe does', async () => {
    const error = await errorOf(call('History.list', { filter: 'vdsm.VM.(', filterType: 'regexp' }));
    expect(error.code).toBe(ErrorCodes.InvalidFilter);
  });

  it('returns the steps opstream replay prints, and stops at `to` (time travel)', async () => {
    const { steps, total } = await call<{ total: number; steps: { seq: number; from: unknown; to: unknown; event: { type: string } }[] }>('History.get', { alertName });
    expect(total).toBe(steps.length);
    expect(steps[0]).toMatchObject({ from: null, to: 'WaitForLaunch', event: { type: 'CREATE' } });
    expect(steps.at(-1)).toMatchObject({ to: 'Paused', event: { type: 'WORK_DONE' } });
    for (let i = 1; i < steps.length; i += 1) expect(steps[i]?.from).toEqual(steps[i - 1]?.to);

    const pause = steps.find((step) => step.event.type === 'PAUSE');
    const before = await call<{ steps: { seq: number; to: unknown }[] }>('History.get', { alertName, to: (pause?.seq ?? 0) - 1 });
    expect(before.steps.at(-1)?.to).toBe('Up');
    const after = await call<{ steps: { seq: number }[] }>('History.get', { alertName, after: pause?.seq });
    expect(after.steps.map((step) => step.seq)).toEqual(steps.filter((step) => step.seq > (pause?.seq ?? 0)).map((step) => step.seq));
  });

  it("verifies the history on today's machine", async () => {
    const verification = await call<{ ok: boolean; verified: number; machine: { id: string } }>('History.verify', { alertName });
    const { total } = await call<{ total: number }>('History.get', { alertName });
    expect(verification).toMatchObject({ ok: true, verified: total, machine: { id: 'vm' } });
  });

  it('marks the first divergence of a history today\'s machine does not reproduce', async () => {
    const diverged = uniqueId('diverged');
    const seq = await publishDivergedHistory(stack.agent.nc, diverged, stack.agent.runtime.seal);
    const verification = await call<{ ok: boolean; verified: number; divergence: { seq: number; recorded: unknown; recomputed: unknown; event: { type: string } } }>('History.verify', { alertName: `vdsm.VM.${diverged}` });
    expect(verification).toMatchObject({ ok: false, verified: 9, divergence: { seq, recorded: 'Paused', recomputed: 'Pausing', event: { type: 'PAUSE' } } });
    // Up to just before the divergence, the history verifies.
    expect(await call('History.verify', { alertName: `vdsm.VM.${diverged}`, to: seq - 1 })).toMatchObject({ ok: true, verified: 9 });
  });

  it('says clearly when the entity has no history or the name is not an alert name', async () => {
    expect((await errorOf(call('History.get', { alertName: 'vdsm.VM.never-created' }))).code).toBe(ErrorCodes.NoSuchEntity);
    const error = await errorOf(call('History.verify', { alertName: 'not-an-alert' }));
    expect(error.code).toBe(ErrorCodes.InvalidParams);
    expect(error.message).toMatch(/not an alert name/);
  });
});

describe('the page is served on the API port', () => {
  const base = () => `http://127.0.0.1:${stack.agent.api.port}`;

  it('serves the HTML with a strict content security policy and no referrer', async () => {
    const response = await fetch(`${base()}/?token=abc`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/html/);
    expect(response.headers.get('content-security-policy')).toMatch(/connect-src 'self'/);
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(await response.text()).toMatch(/<script type="module" src="\/viz\/app.js">/);
  });

  it('bundles the page script (with elkjs) and serves the stylesheet', async () => {
    const script = await fetch(`${base()}/viz/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect((await script.text()).length).toBeGreaterThan(100_000);
    expect((await fetch(`${base()}/viz/app.css`)).status).toBe(200);
  });

  it('still answers 404 for anything else', async () => {
    expect((await fetch(`${base()}/viz/nope.js`)).status).toBe(404);
    expect((await fetch(`${base()}/healthz`)).status).toBe(200);
  });
});
