// The scripted demo `npm start` runs against its own agent: VMs created, one paused on EIO and
// continued, a migration cancelled half-way, one migrated away, one paused and destroyed; then an image created and copied, a
// storage connection, and a gluster volume rebalanced — every step shown as it streams in.
import { connect, type OpstreamClient } from '../index.ts';
import { formatAlertLine } from './format.ts';

export async function runDemo(apiUrl: string, token: string, say: (line: string) => void = console.log): Promise<void> {
  const host = await connect(apiUrl, { token });
  const run = Date.now().toString(36);
  const [web, db, cache] = ['web', 'db', 'cache'].map((name) => `demo-${run}-${name}`) as [string, string, string];
  const filter = `vdsm\\..*\\.demo-${run}-.*`;
  try {
    await host.subscribe(filter, 'regexp');
    const printer = printAlerts(host, filter, say);

    say(`\n▶ creating ${web}, ${db} and ${cache}`);
    // The two that migrate have disks: each reports the storage side on vdsm.VM.<vmId>.Disk.<diskId>.
    const disks: Record<string, Array<{ diskId: string }>> = { [web]: [{ diskId: 'system' }, { diskId: 'data' }], [db]: [{ diskId: 'system' }] };
    await Promise.all([web, db, cache].map((vmId) => host.vm.create(vmId, { memoryMiB: 1024, cpus: 2, password: 'not-stored', disks: disks[vmId] ?? [] })));
    await waitForStatus(host, [web, db, cache], 'Up');

    say(`\n▶ ${db} hits a disk error (injected EIO), then is continued`);
    await host.call('Sim.injectFault', { vmId: db, fault: 'EIO' });
    await waitForStatus(host, [db], 'Paused');
    await host.vm.cont(db);
    await waitForStatus(host, [db], 'Up');

    say(`\n▶ migrating ${db} to host-3, cancelled half-way (migrateCancel: it keeps running here)`);
    const { jobId } = await host.vm.migrate(db, 'host-3');
    while ((await host.vm.getInfo(db)).operationInfo.stageDescription !== 'copying memory') await new Promise((resolve) => setTimeout(resolve, 50));
    await host.jobs.cancel(jobId);
    const cancelled = await host.waitForJob(jobId, 30_000);
    say(`  job ${jobId} ${cancelled.status}: ${cancelled.error[1]}`);

    say(`\n▶ migrating ${web} to host-2 (ends Down on this host)`);
    await host.vm.migrate(web, 'host-2');
    await waitForStatus(host, [web], 'Down');

    say(`\n▶ pausing and destroying ${cache}`);
    await host.vm.pause(cache);
    await waitForStatus(host, [cache], 'Paused');
    await host.vm.destroy(cache);
    await waitForStatus(host, [cache], 'Down');

    const [image, copy, volume, nfs] = ['image', 'copy', 'volume', 'nfs'].map((name) => `demo-${run}-${name}`) as [string, string, string, string];
    say(`\n▶ creating image ${image} (64 MiB) and copying it to ${copy}`);
    await host.call('Image.create', { imageId: image, size: 64 * 1024 * 1024 });
    await waitFor(host, 'Image.getInfo', { imageId: image }, 'OK');
    await host.call('Image.copy', { imageId: image, dstImageId: copy });
    await waitFor(host, 'Image.getInfo', { imageId: copy }, 'OK');

    const { port } = new URL(apiUrl);
    say(`\n▶ connecting storage ${nfs} (to this agent's own port ${port}, standing in for an NFS server)`);
    await host.call('StorageConnection.connect', { connectionId: nfs, server: '127.0.0.1', port: Number(port), password: 'not-stored' });
    await waitFor(host, 'StorageConnection.getInfo', { connectionId: nfs }, 'Connected');

    say(`\n▶ gluster volume ${volume}: create, start, rebalance (gluster runs it; the agent polls)`);
    await host.call('GlusterVolume.create', { volumeName: volume, bricks: ['host1:/bricks/b1', 'host2:/bricks/b2'] });
    await waitFor(host, 'GlusterVolume.getInfo', { volumeName: volume }, 'Stopped');
    await host.call('GlusterVolume.start', { volumeName: volume });
    await waitFor(host, 'GlusterVolume.getInfo', { volumeName: volume }, 'Started');
    await host.call('GlusterVolume.rebalanceStart', { volumeName: volume });
    await waitForSettled(host, 'GlusterVolume.getInfo', { volumeName: volume });
    await host.call('StorageConnection.disconnect', { connectionId: nfs });
    await waitFor(host, 'StorageConnection.getInfo', { connectionId: nfs }, 'Disconnected');

    printer.stop();
    say('\n▶ demo finished; final state:');
    for (const vmId of [web, db, cache]) {
      const info = await host.vm.getInfo(vmId);
      say(`  ${vmId.padEnd(24)} ${info.status.padEnd(10)} last alert at stream sequence ${info.seq}`);
    }
  } finally {
    await host.close();
  }
}

function printAlerts(host: OpstreamClient, filter: string, say: (line: string) => void): { stop(): void } {
  let running = true;
  void (async () => {
    while (running) {
      const event = await host.waitForEvent(filter, 1_000, 'regexp').catch(() => undefined);
      if (event) say(formatAlertLine(event.alertName, event.seq, event.operationInfo));
    }
  })();
  return { stop: () => (running = false) };
}

type Info = { status: string; operationInfo: { stage: [number, number] } };

async function waitFor(host: OpstreamClient, method: string, params: Record<string, unknown>, status: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const info = await host.call<Info>(method, params).catch(() => undefined);
    if (info?.status === status && info.operationInfo.stage[0] === info.operationInfo.stage[1]) return;
    if (Date.now() > deadline) throw new Error(`${method} ${JSON.stringify(params)} did not reach ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitForSettled(host: OpstreamClient, method: string, params: Record<string, unknown>): Promise<void> {
  const info = await host.call<Info>(method, params);
  await waitFor(host, method, params, info.status);
}

/** Polls getInfo: the demo's printer owns the event stream, and polling is the seed's fallback. */
async function waitForStatus(host: OpstreamClient, vmIds: string[], status: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const vmId of vmIds) {
    while ((await host.vm.getInfo(vmId)).status !== status) {
      if (Date.now() > deadline) throw new Error(`${vmId} did not reach ${status} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
