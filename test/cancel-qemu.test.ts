// A real qemu-img copy cancelled half-way: the runtime stores the cancel, kills the tool, and the
// abort removes the partial destination — the image ends Absent and no file is left behind.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QEMU_IMG_HINT, type QemuImageDriver } from '../actors/drivers/qemu-image-driver.ts';
import { CANCELLED_CODE } from '../machines/entity.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { recordAlerts } from './helpers/alerts.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { requireTool } from './helpers/requirements.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const qemuImg = requireTool('qemu-img', QEMU_IMG_HINT);

let server: NatsTestServer;
let agent: Agent;
let host: OpstreamClient;
let imageDir: string;

beforeAll(async () => {
  if (!qemuImg.available) return;
  server = await NatsTestServer.start();
  imageDir = mkdtempSync(join(tmpdir(), 'opstream-cancel-'));
  agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, imageDriver: 'qemu', imageDir });
  host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
});
afterAll(async () => {
  await host?.close();
  await agent?.stop();
  await server?.stop();
  if (imageDir) rmSync(imageDir, { recursive: true, force: true });
});

describe.skipIf(!qemuImg.available)('cancelling a real qemu-img copy', () => {
  it('kills the tool half-way and leaves no file behind', async () => {
    const images = agent.images as QemuImageDriver;
    const [source, target] = [uniqueId('src'), uniqueId('dst')];
    const sourceAlerts = await recordAlerts(agent.nc, 'VDSM', `vdsm.Storage.Image.${source}`);
    await host.call('Image.create', { imageId: source, size: 512 * MiB });
    await sourceAlerts.until(({ alert }) => alert.status === 'OK');
    await sourceAlerts.stop();
    // Real data, so the copy takes a while and reports progress.
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 ${512 * MiB}`, images.pathOf(source)]);

    const alerts = await recordAlerts(agent.nc, 'VDSM', `vdsm.Storage.Image.${target}`);
    const { jobId } = await host.call<{ jobId: string }>('Image.copy', { imageId: source, dstImageId: target });
    await alerts.until(({ alert }) => alert.state === 'Copying' && alert.operationInfo.percentage >= 1, 60_000);
    expect(existsSync(images.pathOf(target))).toBe(true);
    const answer = await host.call<{ status: string; policy: string }>('Job.cancel', { jobId });
    expect(answer).toMatchObject({ status: 'aborting', policy: 'revert' });

    const ended = await alerts.until(({ alert }) => alert.taskStatus !== undefined && alert.taskStatus !== 'running', 60_000);
    expect(ended.alert).toMatchObject({ status: 'Absent', taskStatus: 'cancelled' });
    expect(ended.alert.operationInfo.lastError[0]).toBe(CANCELLED_CODE);
    // It stopped half-way: the last progress before the cancel was short of the end.
    const cancelAt = alerts.alerts.findIndex(({ alert }) => alert.event.type === 'CANCEL');
    const before = alerts.alerts.slice(0, cancelAt).map(({ alert }) => alert.operationInfo.percentage);
    expect(Math.max(...before)).toBeLessThan(100);
    expect(existsSync(images.pathOf(target))).toBe(false);
    expect(readdirSync(imageDir)).toEqual([`${Buffer.from(source).toString('base64url')}.qcow2`]);
    expect((await host.call<{ status: string }>('Job.getInfo', { jobId })).status).toBe('aborted');
    await alerts.stop();
  }, 120_000);
});
