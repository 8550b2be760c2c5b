// The VM machine on its own: pure transitions, OperationInfo from state meta, JSON round trips.
import { describe, expect, it } from 'vitest';
import { initialTransition, raise, setup, transition, type SnapshotFrom } from 'xstate';
import { MachineActionError, nextSnapshot } from '../actors/pure-transition.ts';
import { operationInfoOf, stateMeta } from '../machines/entity.ts';
import { vmMachine, type VmEvent } from '../machines/vm.ts';
import { isOperationComplete, OperationInfo } from '../src/domain/operation-info.ts';

type Snapshot = SnapshotFrom<typeof vmMachine>;
const task = (methodName: string) => ({ id: `task-${methodName}`, methodName, kwargs: {} });

function run(events: VmEvent[], from?: Snapshot): Snapshot {
  let snapshot = from ?? initialTransition(vmMachine, { id: 'vm1' })[0];
  for (const event of events) {
    expect(snapshot.can(event), `${JSON.stringify(snapshot.value)} should take ${event.type}`).toBe(true);
    snapshot = transition(vmMachine, snapshot, event)[0];
  }
  return snapshot;
}
const info = (snapshot: Snapshot) => OperationInfo.parse(operationInfoOf(stateMeta(snapshot), snapshot.context));

const create: VmEvent = { type: 'CREATE', task: task('VM.create'), params: { memoryMiB: 512 } };
const up = () => run([create, { type: 'WORK_DONE' }, { type: 'WORK_DONE' }]);

describe('VM machine', () => {
  it('creates through WaitForLaunch and Powering up to Up, with stages and percentages', () => {
    const launching = run([create, { type: 'WORK_PROGRESS', percentage: 50 }]);
    expect(stateMeta(launching).status).toBe('WaitForLaunch');
    expect(info(launching)).toEqual({
      operationDescription: 'Creating',
      stageDescription: 'configuring',
      stage: [1, 3],
      percentage: 25,
      lastError: [0, ''],
      extraData: { state: 'preparing for launch' },
    });
    const powering = run([{ type: 'WORK_DONE' }, { type: 'WORK_PROGRESS', percentage: 50 }], launching);
    expect(stateMeta(powering).status).toBe('Powering up');
    expect(info(powering)).toMatchObject({ stage: [2, 3], percentage: 75, extraData: { state: 'powering up' } });
    const running = run([{ type: 'WORK_DONE' }], powering);
    expect(stateMeta(running).status).toBe('Up');
    expect(isOperationComplete(info(running))).toBe(true);
    expect(running.context.task).toBeNull();
  });

  it('pauses on EIO with the seed\'s OperationInfo', () => {
    const paused = run([{ type: 'IO_ERROR', error: [123, 'Error writing to disks'] }], up());
    expect(info(paused)).toEqual({
      operationDescription: 'Paused',
      stageDescription: 'Paused',
      stage: [1, 1],
      percentage: -1,
      lastError: [123, 'Error writing to disks'],
      extraData: { state: 'paused' },
    });
  });

  it('clears the error when a paused VM is continued', () => {
    const paused = run([{ type: 'IO_ERROR', error: [123, 'Error writing to disks'] }], up());
    const resumed = run([{ type: 'CONT', task: task('VM.cont') }, { type: 'WORK_DONE' }], paused);
    expect(info(resumed)).toMatchObject({ operationDescription: 'Running', lastError: [0, ''], extraData: { state: 'up' } });
  });

  it('migrates in stages and ends Down on the source', () => {
    const configuring = run([{ type: 'MIGRATE', task: task('VM.migrate'), dstHost: 'h2' }], up());
    expect(stateMeta(configuring).status).toBe('Migration Source');
    expect(info(configuring)).toMatchObject({ operationDescription: 'Migration', stageDescription: 'configuring', stage: [1, 3], percentage: -1 });
    const copying = run([{ type: 'WORK_DONE' }, { type: 'WORK_PROGRESS', percentage: 40 }], configuring);
    expect(info(copying)).toMatchObject({ stageDescription: 'copying memory', stage: [2, 3], percentage: 40, extraData: { state: 'migrating' } });
    const done = run([{ type: 'WORK_DONE' }], copying);
    expect(stateMeta(done).status).toBe('Down');
    expect(done.context.dstHost).toBeNull();
  });

  it('keeps the VM Up with lastError when a migration fails', () => {
    const failed = run([{ type: 'MIGRATE', task: task('VM.migrate'), dstHost: 'h2' }, { type: 'WORK_FAILED', error: [12, 'destination refused'] }], up());
    expect(stateMeta(failed).status).toBe('Up');
    expect(info(failed).lastError).toEqual([12, 'destination refused']);
  });

  it('refuses what a state cannot take', () => {
    const down = initialTransition(vmMachine, { id: 'vm1' })[0];
    expect(down.can({ type: 'PAUSE', task: task('VM.pause') })).toBe(false);
    expect(down.can({ type: 'DESTROY', task: task('VM.destroy') })).toBe(false);
    expect(up().can(create)).toBe(false);
    expect(up().can({ type: 'CONT', task: task('VM.cont') })).toBe(false);
  });

  it('destroys from any state but Down, ending in Down', () => {
    const launching = run([create]);
    const destroyed = run([{ type: 'DESTROY', task: task('VM.destroy') }, { type: 'WORK_DONE' }], launching);
    expect(stateMeta(destroyed).status).toBe('Down');
    expect(info(destroyed).extraData).toEqual({ state: 'down' });
  });

  it('round-trips a persisted snapshot through JSON', () => {
    const copying = run([{ type: 'MIGRATE', task: task('VM.migrate'), dstHost: 'h2' }, { type: 'WORK_DONE' }], up());
    const persisted = JSON.parse(JSON.stringify(vmMachine.getPersistedSnapshot(copying)));
    const restored = vmMachine.resolveState(persisted);
    expect(restored.value).toEqual(copying.value);
    expect(restored.context).toEqual(copying.context);
    expect(run([{ type: 'WORK_DONE' }], restored).value).toBe('Down');
  });

  it('uses the seed\'s words for extraData.state in every state', () => {
    const words = new Set<string>();
    const collect = (snapshot: Snapshot) => words.add(String(info(snapshot).extraData['state']));
    collect(initialTransition(vmMachine, { id: 'vm1' })[0]);
    collect(run([create]));
    collect(run([create, { type: 'WORK_DONE' }]));
    collect(up());
    collect(run([{ type: 'PAUSE', task: task('VM.pause') }, { type: 'WORK_DONE' }], up()));
    collect(run([{ type: 'MIGRATE', task: task('VM.migrate'), dstHost: 'h' }], up()));
    collect(run([{ type: 'DESTROY', task: task('VM.destroy') }], up()));
    expect([...words].sort()).toEqual(['down', 'migrating', 'paused', 'powering down', 'powering up', 'preparing for launch', 'up']);
  });
});

describe('nextSnapshot (the runtime\'s reusable-scope transition)', () => {
  it('computes exactly what XState\'s transition() computes, and the machine emits no actions to run', () => {
    const events: VmEvent[] = [
      create,
      { type: 'WORK_PROGRESS', percentage: 30 },
      { type: 'WORK_DONE' },
      { type: 'WORK_DONE' },
      { type: 'MIGRATE', task: task('VM.migrate'), dstHost: 'h2' },
      { type: 'WORK_DONE' },
      { type: 'IO_ERROR', error: [123, 'Error writing to disks'] },
      { type: 'CONT', task: task('VM.cont') },
      { type: 'DESTROY', task: task('VM.destroy') },
      { type: 'WORK_DONE' },
    ];
    let ours = initialTransition(vmMachine, { id: 'vm1' })[0];
    let theirs = ours;
    for (const event of events) {
      const [next, actions] = transition(vmMachine, theirs, event);
      expect(actions).toEqual([]);
      theirs = next;
      ours = nextSnapshot(vmMachine, ours, event);
      expect(ours.value).toEqual(theirs.value);
      expect(ours.context).toEqual(theirs.context);
    }
  });

  it('fails loudly, naming it, when a machine asks for an action the runtime would not run', () => {
    const chatty = setup({ actions: { notify: () => undefined } }).createMachine({
      id: 'chatty',
      initial: 'a',
      states: { a: { on: { GO: { target: 'b', actions: 'notify' } } }, b: { entry: raise({ type: 'AGAIN' }) } },
    });
    const start = initialTransition(chatty)[0];
    expect(() => nextSnapshot(chatty, start, { type: 'GO' })).toThrow(MachineActionError);
    expect(() => nextSnapshot(chatty, start, { type: 'GO' })).toThrow(/"notify"/);
  });

  it('takes what the hypervisor did on its own: an exit ends any state in Down, outside stops and resumes settle', () => {
    const exited: VmEvent = { type: 'EXITED', error: [130, 'QEMU (pid 7) ended without the agent asking: killed by SIGKILL'] };
    for (const from of [up(), run([create]), run([{ type: 'PAUSE', task: task('VM.pause') }], up())]) {
      const down = run([exited], from);
      expect(down.value).toBe('Down');
      expect(info(down).lastError).toEqual(exited.error);
      expect(down.context.task).toBeNull();
    }
    const down = run([exited], up());
    expect(down.can(exited)).toBe(false);

    const stopped = run([{ type: 'STOPPED', error: [131, 'paused outside'] }], up());
    expect(stopped.value).toBe('Paused');
    expect(info(stopped).lastError).toEqual([131, 'paused outside']);
    // An outside stop while the agent's own pause runs is that pause: not a second event.
    expect(run([{ type: 'PAUSE', task: task('VM.pause') }], up()).can({ type: 'STOPPED', error: [131, ''] })).toBe(false);
    const resumed = run([{ type: 'RESUMED' }], stopped);
    expect(resumed.value).toBe('Up');
    expect(info(resumed).lastError).toEqual([0, '']);
    expect(resumed.can({ type: 'RESUMED' })).toBe(false);
  });

  it('watches settled VMs: Up and Paused declare a watch that continues after an agent restart', () => {
    expect(stateMeta(up())).toMatchObject({ work: 'watchRunning', onResume: 'continue' });
    const paused = run([{ type: 'PAUSE', task: task('VM.pause') }, { type: 'WORK_DONE' }], up());
    expect(stateMeta(paused)).toMatchObject({ work: 'watchPaused', onResume: 'continue' });
    expect(stateMeta(run([exitedEvent], up())).work).toBeUndefined();
  });
});

const exitedEvent: VmEvent = { type: 'EXITED', error: [130, 'gone'] };
