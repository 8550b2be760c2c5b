// Storage connections against real TCP servers on this machine, and gluster volumes whose
// operations the agent follows by polling.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REBALANCE_FAILED } from '../actors/drivers/gluster-driver.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { ErrorCodes } from '../src/domain/errors.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { watchEntity } from './helpers/entity-alerts.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

let server: NatsTestServer;
let agent: Agent;
let host: OpstreamClient;
let storage: Server;
const storageSockets = new Set<Socket>();

beforeAll(async () => {
  server = await NatsTestServer.start();
  agent = await startAgent({
    natsUrl: server.url,
    root: process.cwd(),
    port: 0,
    sim: { stepMs: 5 },
    gluster: { tickMs: 20, filesPerTick: 40, pollMs: 15 },
    storageAllow: ['127.0.0.1'],
  });
  host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  // Stands for an NFS server: it accepts connections, and a test can drop them.
  storage = createServer((socket) => {
    storageSockets.add(socket);
    socket.on('close', () => storageSockets.delete(socket));
  });
  await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  await host?.close();
  await agent?.stop();
  await server?.stop();
  storage?.close();
});

const storagePort = () => (storage.address() as AddressInfo).port;

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('StorageConnection', () => {
  it('connects, holds and disconnects, without storing the password', async () => {
    const id = uniqueId('nfs');
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Connection.${id}`);
    await host.call('StorageConnection.connect', { connectionId: id, server: '127.0.0.1', port: storagePort(), path: '/export', password: 's3cret' });
    const connected = await watch.until('Connected');
    expect(connected.alert.operationInfo).toMatchObject({ operationDescription: 'Connected', stage: [1, 1], extraData: { connected: true } });
    expect(storageSockets.size).toBeGreaterThan(0);
    const info = await host.call<{ params: Record<string, unknown> }>('StorageConnection.getInfo', { connectionId: id });
    expect(info.params).toMatchObject({ server: '127.0.0.1', path: '/export', password: '<redacted>' });
    await host.call('StorageConnection.disconnect', { connectionId: id });
    await watch.until('Disconnected', connected.seq);
    expect(JSON.stringify(watch.alerts())).not.toContain('s3cret');
    await watch.stop();
  });

  it('reports a refused connection through lastError', async () => {
    const id = uniqueId('refused');
    const port = await closedPort();
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Connection.${id}`);
    await host.call('StorageConnection.connect', { connectionId: id, server: '127.0.0.1', port });
    const failed = await watch.until('Disconnected');
    expect(failed.alert).toMatchObject({ taskStatus: 'failed', operationInfo: { lastError: [601, `connection refused by 127.0.0.1:${port}`] } });
    await watch.stop();
  });

  it('reports a connection the server drops', async () => {
    const id = uniqueId('dropped');
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Connection.${id}`);
    await host.call('StorageConnection.connect', { connectionId: id, server: '127.0.0.1', port: storagePort() });
    const connected = await watch.until('Connected');
    for (const socket of storageSockets) socket.destroy();
    const lost = await watch.until('Disconnected', connected.seq);
    expect(lost.alert.operationInfo.lastError).toEqual([605, `connection to 127.0.0.1:${storagePort()} lost`]);
    expect(lost.alert.task).toBeUndefined();
    await watch.stop();
  });

  it('sees a server that half-closes the connection — even at once — as lost', async () => {
    // The server ends its side right after accepting, keeping its read side open (a half-close).
    const halfClosing = createServer({ allowHalfOpen: true }, (socket) => socket.end());
    await new Promise<void>((resolve) => halfClosing.listen(0, '127.0.0.1', resolve));
    const port = (halfClosing.address() as AddressInfo).port;
    const id = uniqueId('halfclosed');
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Connection.${id}`);
    await host.call('StorageConnection.connect', { connectionId: id, server: '127.0.0.1', port });
    const lost = await watch.until('Disconnected');
    expect(lost.alert.operationInfo.lastError).toEqual([605, `connection to 127.0.0.1:${port} lost`]);
    await watch.stop();
    halfClosing.close();
  });

  it('refuses bad parameters', async () => {
    await expect(host.call('StorageConnection.connect', { connectionId: 'x' })).rejects.toMatchObject({ code: ErrorCodes.InvalidParams, message: expect.stringContaining('server') });
    await expect(host.call('StorageConnection.connect', { connectionId: 'x', server: 'h', port: 70_000 })).rejects.toMatchObject({ code: ErrorCodes.InvalidParams, message: expect.stringContaining('port') });
    await expect(host.call('StorageConnection.disconnect', { connectionId: uniqueId('never') })).rejects.toMatchObject({ code: ErrorCodes.NoSuchEntity });
    // Only servers on the agent's allow-list: the API is no port scanner.
    await expect(host.call('StorageConnection.connect', { connectionId: uniqueId('scan'), server: '10.1.2.3', port: 22 })).rejects.toMatchObject({
      code: ErrorCodes.Forbidden,
      message: expect.stringContaining('--storage-allow 10.1.2.3:22'),
    });
  });
});

async function startedVolume(bricks: string[]): Promise<string> {
  const name = uniqueId('vol');
  const watch = await watchEntity(agent.nc, `vdsm.Gluster.Volume.${name}`);
  await host.call('GlusterVolume.create', { volumeName: name, bricks });
  const stopped = await watch.until('Stopped');
  await host.call('GlusterVolume.start', { volumeName: name });
  await watch.until('Started', stopped.seq);
  await watch.stop();
  return name;
}

describe('GlusterVolume', () => {
  it('creates, starts, rebalances (progress polled from gluster) and stops', async () => {
    const name = await startedVolume(['h1:/bricks/a1', 'h2:/bricks/a2']);
    const watch = await watchEntity(agent.nc, `vdsm.Gluster.Volume.${name}`);
    const { taskId } = await host.call<{ taskId: string }>('GlusterVolume.rebalanceStart', { volumeName: name });
    const done = await watch.until('Started');
    const progress = watch.alerts().filter((alert) => alert.operationInfo.operationDescription === 'Rebalancing').map((alert) => alert.operationInfo.percentage);
    expect(progress.length).toBeGreaterThan(3);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(done.alert).toMatchObject({ task: { id: taskId }, taskStatus: 'finished', operationInfo: { operationDescription: 'Running', extraData: { rebalance: 'completed' } } });
    const heal = await host.call<{ bricks: Array<{ brick: string }> }>('GlusterVolume.healInfo', { volumeName: name });
    expect(heal.bricks.map((brick) => brick.brick)).toEqual(['h1:/bricks/a1', 'h2:/bricks/a2']);
    await host.call('GlusterVolume.stop', { volumeName: name });
    await watch.until('Stopped', done.seq);
    await expect(host.call('GlusterVolume.healInfo', { volumeName: name })).rejects.toMatchObject({ code: ErrorCodes.InvalidTransition, message: expect.stringContaining('needs it Started') });
    await watch.stop();
  });

  it('reports a rebalance that fails on a brick, leaving the volume started', async () => {
    const name = await startedVolume(['h3:/bricks/b1', 'h4:/bricks/b2']);
    agent.gluster.failRebalanceOnBrick(name, 'h4:/bricks/b2');
    const watch = await watchEntity(agent.nc, `vdsm.Gluster.Volume.${name}`);
    await host.call('GlusterVolume.rebalanceStart', { volumeName: name });
    const failed = await watch.until('Started');
    expect(failed.alert).toMatchObject({
      taskStatus: 'failed',
      operationInfo: {
        lastError: [REBALANCE_FAILED, 'rebalance failed on brick h4:/bricks/b2: Transport endpoint is not connected'],
        extraData: { rebalance: 'failed' },
      },
    });
    await watch.stop();
  });

  it('stops a rebalance on request, cancelling its task', async () => {
    const name = await startedVolume(['h5:/bricks/c1', 'h6:/bricks/c2', 'h7:/bricks/c3']);
    const watch = await watchEntity(agent.nc, `vdsm.Gluster.Volume.${name}`);
    const { taskId } = await host.call<{ taskId: string }>('GlusterVolume.rebalanceStart', { volumeName: name });
    await host.call('GlusterVolume.rebalanceStop', { volumeName: name });
    const stopped = await watch.until('Started');
    expect(stopped.alert.operationInfo.extraData).toEqual({ rebalance: 'stopped' });
    expect(watch.alerts().some((alert) => alert.cancelledTaskId === taskId)).toBe(true);
    await watch.stop();
  });

  it('refuses bad input and a brick already in use', async () => {
    await expect(host.call('GlusterVolume.create', { volumeName: 'v', bricks: ['no-colon'] })).rejects.toMatchObject({ code: ErrorCodes.InvalidParams, message: expect.stringContaining('host:/path') });
    await expect(host.call('GlusterVolume.create', { volumeName: 'v', bricks: ['h:/a', 'h:/a'] })).rejects.toMatchObject({ message: expect.stringContaining('distinct') });
    await expect(host.call('GlusterVolume.create', { volumeName: 'a.b', bricks: ['h:/a'] })).rejects.toMatchObject({ message: expect.stringContaining("volumeName: must not contain '.'") });
    await expect(host.call('GlusterVolume.rebalanceStart', { volumeName: uniqueId('none') })).rejects.toMatchObject({ code: ErrorCodes.NoSuchEntity });
    const name = uniqueId('dup');
    const watch = await watchEntity(agent.nc, `vdsm.Gluster.Volume.${name}`);
    await host.call('GlusterVolume.create', { volumeName: name, bricks: ['h1:/bricks/a1'] });
    const failed = await watch.until('Absent');
    expect(failed.alert.operationInfo.lastError).toEqual([1, 'brick h1:/bricks/a1 is already part of a volume']);
    await watch.stop();
  });
});

describe('the same guarantees as VMs', () => {
  it('replays every image, connection and volume history, and rebuilds them after a restart', async () => {
    const volume = await startedVolume(['h8:/bricks/d1']);
    const imageId = uniqueId('persisted');
    const watch = await watchEntity(agent.nc, `vdsm.Storage.Image.${imageId}`);
    await host.call('Image.create', { imageId, size: 1 << 20 });
    await watch.until('OK');
    await watch.stop();

    const { checkStreamInvariants } = await import('./helpers/stream-invariants.ts');
    const { entities } = await checkStreamInvariants(agent.nc, new Map());
    expect(entities).toBeGreaterThan(5);

    const before = await host.call('GlusterVolume.getInfo', { volumeName: volume });
    await host.close();
    await agent.stop();
    agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 }, gluster: { tickMs: 20, pollMs: 15 }, storageAllow: ['127.0.0.1'] });
    host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    expect(await host.call('GlusterVolume.getInfo', { volumeName: volume })).toEqual(before);
    expect(await host.call('Image.getInfo', { imageId })).toMatchObject({ status: 'OK', size: 1 << 20 });
  });
});
