import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, RpcError, TimeoutError, type OpstreamClient, type ReceivedOperationInfo } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { startStack, type TestStack } from './helpers/stack.ts';

let stack: TestStack;
let host: OpstreamClient;

beforeAll(async () => {
  stack = await startStack();
  host = stack.host;
});
afterAll(() => stack?.stop());

async function createAndWaitUp(vmId: string): Promise<void> {
  await host.subscribe(`vdsm.VM.${vmId}`);
  await host.vm.create(vmId, { memoryMiB: 256 });
  for (;;) {
    const event = await host.waitForEvent(`vdsm.VM.${vmId}`, 5_000);
    if (event.operationInfo.extraData['state'] === 'up') return;
  }
}

/**
 * The seed's client loop: register the operation, then follow events, falling back to getInfo
 * when nothing arrives in time, until the stage reaches its total.
 */
async function pauseAndWait(vmId: string, seen: ReceivedOperationInfo[]): Promise<'SUCCESS' | [number, string]> {
  await host.vm.pause(vmId);
  for (;;) {
    let opInfo: ReceivedOperationInfo;
    try {
      opInfo = (await host.waitForEvent(`vdsm.VM.${vmId}`, 1_000)).operationInfo;
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      opInfo = (await host.vm.getInfo(vmId)).operationInfo;
    }
    seen.push(opInfo);
    if (opInfo.stage[0] !== opInfo.stage[1]) continue; // in progress: a UI would update here
    return opInfo.extraData['state'] === 'paused' ? 'SUCCESS' : opInfo.lastError;
  }
}

describe('the seed\'s pause flow', () => {
  it('pauses a running VM and sees the operation through to "paused"', async () => {
    const vmId = uniqueId('best_vm');
    await createAndWaitUp(vmId);
    const seen: ReceivedOperationInfo[] = [];
    expect(await pauseAndWait(vmId, seen)).toBe('SUCCESS');
    expect(seen[0]).toMatchObject({ operationDescription: 'Pausing', stage: [1, 2] });
    expect(seen.at(-1)).toMatchObject({ operationDescription: 'Paused', stage: [1, 1], lastError: [0, ''] });
    expect((await host.vm.getInfo(vmId)).status).toBe('Paused');
  });

  it('reports lastError when the VM pauses on EIO instead', async () => {
    const vmId = uniqueId('eio_vm');
    await createAndWaitUp(vmId);
    await host.call('Sim.injectFault', { vmId, fault: 'EIO' });
    const event = await host.waitForEvent(`vdsm.VM.${vmId}`, 5_000);
    expect(event.operationInfo).toMatchObject({ operationDescription: 'Paused', lastError: [123, 'Error writing to disks'] });
    const info = await host.vm.getInfo(vmId);
    expect(info).toMatchObject({ status: 'Paused', task: null, seq: event.seq });
  });
});

describe('waitForEvent', () => {
  it('waits on several VMs at once with a regexp', async () => {
    const [a, b] = [uniqueId('multi_a'), uniqueId('multi_b')];
    const filter = `vdsm\\.VM\\.(${a}|${b})`;
    await host.subscribe(filter, 'regexp');
    await Promise.all([host.vm.create(a), host.vm.create(b)]);
    // Each VM's whole create, in order, through the one filter: none missed, none twice.
    const states = new Map<string, unknown[]>([[`vdsm.VM.${a}`, []], [`vdsm.VM.${b}`, []]]);
    const seqs: number[] = [];
    const settled = () => [...states.values()].every((seen) => seen.at(-1) === 'up');
    while (!settled()) {
      const event = await host.waitForEvent(filter, 5_000, 'regexp');
      states.get(event.alertName)?.push(event.operationInfo.extraData['state']);
      seqs.push(event.seq);
    }
    // Progress ticks repeat a stage; the stages themselves come in order, each VM's own.
    const stages = (seen: unknown[]) => seen.filter((state, i) => state !== seen[i - 1]);
    const lifecycle = ['preparing for launch', 'powering up', 'up'];
    expect(stages(states.get(`vdsm.VM.${a}`) ?? [])).toEqual(lifecycle);
    expect(stages(states.get(`vdsm.VM.${b}`) ?? [])).toEqual(lifecycle);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    await host.unsubscribe(filter, 'regexp');
  });

  it('times out with a TimeoutError when nothing happens', async () => {
    const quiet = uniqueId('quiet');
    await expect(host.waitForEvent(`vdsm.VM.${quiet}`, 50)).rejects.toBeInstanceOf(TimeoutError);
  });

  it('surfaces API errors as RpcError with their code', async () => {
    const error = await host.vm.pause('no_such_vm').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RpcError);
    expect(error).toMatchObject({ code: ErrorCodes.NoSuchEntity, message: expect.stringContaining('cannot PAUSE') });
    await expect(host.vm.getInfo('no_such_vm')).rejects.toMatchObject({ code: ErrorCodes.NoSuchEntity });
  });
});
