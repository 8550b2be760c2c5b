// Images with the simulated driver: every operation, its failures, and the checks across images.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../src/agent.ts';
import { ErrorCodes } from '../src/domain/errors.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import type { OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { watchEntity } from './helpers/entity-alerts.ts';
import { openRawSocket, type RawReply } from './helpers/raw-socket.ts';
import { startStack, type TestStack } from './helpers/stack.ts';

let stack: TestStack;
let agent: Agent;
let host: OpstreamClient;

beforeAll(async () => {
  stack = await startStack();
  ({ agent, host } = stack);
});
afterAll(() => stack?.stop());

type ImageInfo = { status: string; operationInfo: { operationDescription: string; lastError: [number, string]; extraData: Record<string, unknown> }; size: number | null; baseImageId: string | null };
const info = (imageId: string) => host.call<ImageInfo>('Image.getInfo', { imageId });

async function created(imageId: string, params: Record<string, unknown> = { size: 1 << 20 }): Promise<void> {
  const watch = await watchEntity(agent.nc, `vdsm.Storage.Image.${imageId}`);
  await host.call('Image.create', { imageId, ...params });
  await watch.until('OK');
  await watch.stop();
}

describe('checks across images, decided in one order', () => {
  it('never accepts a batch that copies from, layers on and deletes the same source together', async () => {
    const [source, copy, layer] = [uniqueId('src'), uniqueId('dst'), uniqueId('layer')];
    await created(source);
    const socket = await openRawSocket(agent.api.url, agent.credentials.operatorToken);
    const request = (id: number, method: string, params: Record<string, unknown>) => ({ jsonrpc: '2.0', id, method, params });
    const replies = (await socket.send(JSON.stringify([
      request(1, 'Image.copy', { imageId: source, dstImageId: copy }),
      request(2, 'Image.create', { imageId: layer, baseImageId: source }),
      request(3, 'Image.delete', { imageId: source }),
    ]))) as RawReply[];
    socket.close();
    const byId = new Map(replies.map((reply) => [reply.id, reply]));
    // Whatever order they ran in, the delete cannot have been accepted beside a copy or a layer.
    const accepted = [1, 2, 3].filter((id) => byId.get(id)?.result !== undefined);
    expect(accepted.includes(3) && (accepted.includes(1) || accepted.includes(2))).toBe(false);
    expect(byId.get(3)?.error).toMatchObject({ code: ErrorCodes.InvalidTransition });
  });
});

describe('Image', () => {
  it('creates a standalone image (optimized) and a snapshot layer on it (degraded)', async () => {
    const [base, layer] = [uniqueId('base'), uniqueId('layer')];
    await created(base, { size: 1 << 30 });
    expect(await info(base)).toMatchObject({ status: 'OK', size: 1 << 30, baseImageId: null, operationInfo: { operationDescription: 'Ready', extraData: { imageState: 'optimized' } } });
    await created(layer, { baseImageId: base });
    expect(await info(layer)).toMatchObject({ status: 'OK', size: 1 << 30, baseImageId: base, operationInfo: { extraData: { imageState: 'degraded' } } });
  });

  it('copies with stages and percentages into a new optimized image', async () => {
    const [source, target] = [uniqueId('src'), uniqueId('dst')];
    await created(source);
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Image.${target}`);
    const { taskId } = await host.call<{ taskId: string }>('Image.copy', { imageId: source, dstImageId: target });
    const done = await watch.until('OK');
    const copying = watch.alerts().filter((alert) => alert.status === 'Locked');
    expect(copying[0]?.operationInfo).toMatchObject({ operationDescription: 'Copying', stageDescription: 'copying data', stage: [1, 2] });
    const percentages = copying.map((alert) => alert.operationInfo.percentage);
    expect(percentages).toEqual([...percentages].sort((a, b) => a - b));
    expect(done.alert).toMatchObject({ task: { id: taskId, methodName: 'Image.copy' }, taskStatus: 'finished', operationInfo: { extraData: { imageState: 'optimized' } } });
    await watch.stop();
  });

  it('leaves a failed copy Illegal and broken, with lastError', async () => {
    const [source, target] = [uniqueId('src'), uniqueId('broken')];
    await created(source);
    agent.sim.failNext({ kind: EntityKinds.Image, id: target }, 'copyImage', [28, 'No space left on device']);
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Image.${target}`);
    await host.call('Image.copy', { imageId: source, dstImageId: target });
    const broken = await watch.until('Illegal');
    expect(broken.alert).toMatchObject({ taskStatus: 'failed', operationInfo: { operationDescription: 'Failed', lastError: [28, 'No space left on device'], extraData: { imageState: 'broken' } } });
    await watch.stop();
    // A broken image can still be deleted.
    await host.call('Image.delete', { imageId: target });
  });

  it('merges a layer into its base: the layer is gone, the base stays', async () => {
    const [base, layer] = [uniqueId('base'), uniqueId('layer')];
    await created(base);
    await created(layer, { baseImageId: base });
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Image.${layer}`);
    await host.call('Image.merge', { imageId: layer });
    const merged = await watch.until('Absent');
    expect(merged.alert.operationInfo.extraData).toEqual({ mergedInto: base });
    expect(watch.alerts().some((alert) => alert.operationInfo.operationDescription === 'Merging')).toBe(true);
    expect(await info(base)).toMatchObject({ status: 'OK' });
    await watch.stop();
  });

  it('leaves a failed merge Illegal and broken', async () => {
    const [base, layer] = [uniqueId('base'), uniqueId('layer')];
    await created(base);
    await created(layer, { baseImageId: base });
    agent.sim.failNext({ kind: EntityKinds.Image, id: layer }, 'mergeImage', [5, 'Input/output error']);
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Image.${layer}`);
    await host.call('Image.merge', { imageId: layer });
    expect((await watch.until('Illegal')).alert.operationInfo).toMatchObject({ lastError: [5, 'Input/output error'], extraData: { imageState: 'broken' } });
    await watch.stop();
  });

  it('deletes, after which the id is free again', async () => {
    const id = uniqueId('gone');
    await created(id);
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Image.${id}`);
    await host.call('Image.delete', { imageId: id });
    await watch.until('Absent');
    await watch.stop();
    await created(id);
  });
});

describe('Image: bad input gets clear errors', () => {
  it.each([
    ['an unknown image', 'Image.getInfo', { imageId: 'nope' }, ErrorCodes.NoSuchEntity, /Image nope does not exist/],
    ['a copy from an unknown image', 'Image.copy', { imageId: 'nope', dstImageId: 'x' }, ErrorCodes.NoSuchEntity, /source image nope does not exist/],
    ['a copy onto itself', 'Image.copy', { imageId: 'a', dstImageId: 'a' }, ErrorCodes.InvalidParams, /cannot copy image a onto itself/],
    ['a create without size or base', 'Image.create', { imageId: 'z' }, ErrorCodes.InvalidParams, /size \(bytes\) is required/],
    ['a negative size', 'Image.create', { imageId: 'z', size: -1 }, ErrorCodes.InvalidParams, /size/],
    ['a base that does not exist', 'Image.create', { imageId: 'z', baseImageId: 'nope' }, ErrorCodes.NoSuchEntity, /base image nope does not exist/],
  ])('%s', async (_name, method, params, code, message) => {
    await expect(host.call(method, params)).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
  });

  it('refuses to merge an image without a base', async () => {
    const id = uniqueId('flat');
    await created(id);
    await expect(host.call('Image.merge', { imageId: id })).rejects.toMatchObject({ code: ErrorCodes.InvalidTransition, message: `image ${id} has no base to merge into` });
  });

  it('refuses to delete the base of a layer, and to copy onto an existing image', async () => {
    const [base, layer, other] = [uniqueId('base'), uniqueId('layer'), uniqueId('other')];
    await created(base);
    await created(layer, { baseImageId: base });
    await created(other);
    await expect(host.call('Image.delete', { imageId: base })).rejects.toMatchObject({ message: `image ${base} is the base of ${layer}; merge or delete that layer first` });
    await expect(host.call('Image.copy', { imageId: base, dstImageId: other })).rejects.toMatchObject({ message: expect.stringContaining(`destination image ${other} already exists`) });
  });
});
