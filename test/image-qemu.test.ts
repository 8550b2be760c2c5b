// The real image driver: qcow2 files worked by qemu-img (Debian's qemu-utils; .ci/run installs it).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QEMU_IMG_HINT, type QemuImageDriver } from '../actors/drivers/qemu-image-driver.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { watchEntity } from './helpers/entity-alerts.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { requireTool } from './helpers/requirements.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;

let server: NatsTestServer;
let agent: Agent;
let host: OpstreamClient;
let images: QemuImageDriver;
let imageDir: string;

const qemuImg = requireTool('qemu-img', QEMU_IMG_HINT);

beforeAll(async () => {
  if (!qemuImg.available) return;
  server = await NatsTestServer.start();
  imageDir = mkdtempSync(join(tmpdir(), 'opstream-images-'));
  agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, imageDriver: 'qemu', imageDir });
  host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  images = agent.images as QemuImageDriver;
});
afterAll(async () => {
  await host?.close();
  await agent?.stop();
  await server?.stop();
  if (imageDir) rmSync(imageDir, { recursive: true, force: true });
});

async function settle(imageId: string, call: () => Promise<unknown>, status: string) {
  const watch = await watchEntity(agent.nc, `vdsm.Storage.Image.${imageId}`);
  await call();
  const end = await watch.until(status, 0, 60_000);
  await watch.stop();
  return { end, alerts: watch.alerts() };
}

const create = (imageId: string, params: Record<string, unknown>) =>
  settle(imageId, () => host.call('Image.create', { imageId, ...params }), 'OK');

/** Fills an image with a byte pattern through qemu-io, so a copy has real data to move. */
async function fill(imageId: string, pattern: number, bytes: number): Promise<void> {
  await run('qemu-io', ['-f', 'qcow2', '-c', `write -P ${pattern} 0 ${bytes}`, images.pathOf(imageId)]);
}

describe.skipIf(!qemuImg.available)('qemu-img image driver', () => {
  it('copies a 256 MiB image with the tool\'s own percentages, to a target qemu-img can read', async () => {
    const [source, target] = [uniqueId('big'), uniqueId('bigcopy')];
    await create(source, { size: 256 * MiB });
    await fill(source, 0x5a, 256 * MiB);
    const toolProgress: number[] = [];
    images.onToolProgress = (ref, percent) => {
      if (ref.id === target) toolProgress.push(percent);
    };
    const { end, alerts } = await settle(target, () => host.call('Image.copy', { imageId: source, dstImageId: target }), 'OK');
    images.onToolProgress = undefined;

    const reported = alerts.filter((alert) => alert.status === 'Locked').map((alert) => alert.operationInfo.percentage);
    const inProgress = reported.slice(1); // the first is the registration, at 0
    expect(inProgress.length).toBeGreaterThan(5);
    expect(inProgress).toEqual([...new Set(inProgress)].sort((a, b) => a - b));
    // Each reported percentage is one the tool printed (rounded down), in the tool's order.
    const printed = [...new Set(toolProgress.map(Math.floor))];
    expect(inProgress.every((percent) => printed.includes(percent))).toBe(true);
    expect(end.alert.operationInfo).toMatchObject({ operationDescription: 'Ready', lastError: [0, ''], extraData: { imageState: 'optimized' } });

    const { stdout } = await run('qemu-img', ['info', '--output=json', images.pathOf(target)]);
    expect(JSON.parse(stdout)).toMatchObject({ format: 'qcow2', 'virtual-size': 256 * MiB });
    const check = await run('qemu-io', ['-f', 'qcow2', '-c', `read -P 0x5a 0 ${256 * MiB}`, images.pathOf(target)]);
    expect(check.stdout).not.toMatch(/Pattern verification failed/);
  });

  it('fails a copy whose source file is missing: the target is Illegal with the tool\'s error', async () => {
    const [source, target] = [uniqueId('vanished'), uniqueId('orphan')];
    await create(source, { size: 8 * MiB });
    rmSync(images.pathOf(source));
    const { end } = await settle(target, () => host.call('Image.copy', { imageId: source, dstImageId: target }), 'Illegal');
    expect(end.alert).toMatchObject({ taskStatus: 'failed', operationInfo: { extraData: { imageState: 'broken' } } });
    expect(end.alert.operationInfo.lastError).toEqual([2, expect.stringMatching(/No such file or directory/)]);
  });

  it('merges a layer into its base with qemu-img commit; the base holds the data, the layer file is gone', async () => {
    const [base, layer] = [uniqueId('qbase'), uniqueId('qlayer')];
    await create(base, { size: 16 * MiB });
    await create(layer, { baseImageId: base });
    const { stdout: layerInfo } = await run('qemu-img', ['info', '--output=json', images.pathOf(layer)]);
    expect(JSON.parse(layerInfo)['backing-filename']).toBe(images.pathOf(base));
    await fill(layer, 0x33, 4 * MiB);
    await settle(layer, () => host.call('Image.merge', { imageId: layer }), 'Absent');
    const check = await run('qemu-io', ['-f', 'qcow2', '-c', `read -P 0x33 0 ${4 * MiB}`, images.pathOf(base)]);
    expect(check.stdout).not.toMatch(/Pattern verification failed/);
    await expect(run('qemu-img', ['info', images.pathOf(layer)])).rejects.toThrow();
  });
});
