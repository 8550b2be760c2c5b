// The real VM driver: one qemu-system-x86_64 per VM, driven over QMP. Every transition asserted
// here is one QEMU confirmed (its STOP/RESUME events, its process gone), not one the agent assumed.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/domain/errors.ts';
import { processRuns, QEMU_SYSTEM_HINT, runningPid } from '../actors/drivers/qemu-process.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { QemuVmDriver } from '../actors/drivers/qemu-vm-driver.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { watchEntity } from './helpers/entity-alerts.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { killLeftoverQemus, qemusUnder } from './helpers/qemu.ts';
import { spawnAgent, type AgentProcess } from './helpers/agent-process.ts';
import { QmpClient } from '../actors/drivers/qmp.ts';
import { qemuFiles } from '../actors/drivers/qemu-process.ts';
import { connectNats } from '../src/nats/connection.ts';
import { requireTool } from './helpers/requirements.ts';
import { startLoopingDiskExport } from './helpers/qemu.ts';
import type { QemuImageDriver } from '../actors/drivers/qemu-image-driver.ts';
import { WorkStop } from '../actors/work-stop.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

const qemuSystem = requireTool('qemu-system-x86_64', QEMU_SYSTEM_HINT);
// Disks are qcow2 images (qemu-img), and the disk-error test serves one over NBD (qemu-nbd).
const qemuUtils = requireTool('qemu-nbd', 'install qemu-utils (Debian: apt-get install qemu-utils)');
const qemu = { available: qemuSystem.available && qemuUtils.available };

let server: NatsTestServer;
let agent: Agent;
let host: OpstreamClient;
let vms: QemuVmDriver;
let vmDir: string;

beforeAll(async () => {
  if (!qemu.available) return;
  server = await NatsTestServer.start();
  vmDir = mkdtempSync(join(tmpdir(), 'opstream-vms-'));
  agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, vmDriver: 'qemu', vmDir, hostId: 'qemu-a', imageDriver: 'qemu', imageDir: join(vmDir, 'images') });
  host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  vms = agent.vms as QemuVmDriver;
});
afterAll(async () => {
  await host?.close();
  await agent?.stop();
  await server?.stop();
  if (vmDir) {
    await killLeftoverQemus(vmDir);
    rmSync(vmDir, { recursive: true, force: true });
  }
});

/** Runs `call` and waits for the VM's next settled alert with `status`. */
async function settle(vmId: string, call: () => Promise<unknown>, status: string) {
  const watch = await watchEntity(agent.nc, `vdsm.VM.${vmId}`);
  await call();
  const end = await watch.until(status, 0, 30_000);
  await watch.stop();
  return { end, alerts: watch.alerts() };
}

describe.skipIf(!qemu.available)('QEMU VM driver', () => {
  it('creates, pauses, continues and destroys a VM as QEMU reports it', async () => {
    const vmId = uniqueId('life');
    const created = await settle(vmId, () => host.call('VM.create', { vmId, memoryMiB: 96, cpus: 2 }), 'Up');
    expect([...new Set(created.alerts.map((alert) => alert.status))]).toEqual(['WaitForLaunch', 'Powering up', 'Up']);
    const pid = runningPid(vms.filesOf(vmId));
    expect(pid).toBeGreaterThan(0);
    expect(await vms.status(vmId)).toMatchObject({ status: 'running', running: true, pid });
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    expect(args).toContain(`-name guest=${vmId}`);
    expect(args).toMatch(/-m 96 -smp 2/);

    await settle(vmId, () => host.call('VM.pause', { vmId }), 'Paused');
    expect(await vms.status(vmId)).toMatchObject({ status: 'paused', running: false });
    await settle(vmId, () => host.call('VM.cont', { vmId }), 'Up');
    expect(await vms.status(vmId)).toMatchObject({ status: 'running', running: true });

    const destroyed = await settle(vmId, () => host.call('VM.destroy', { vmId }), 'Down');
    expect(destroyed.end.alert.operationInfo.lastError).toEqual([0, '']);
    expect(runningPid(vms.filesOf(vmId))).toBeUndefined();
    expect(await vms.status(vmId)).toBeUndefined();
  });

  it('records a QEMU killed from outside as Down, with how it ended', async () => {
    const vmId = uniqueId('killed');
    await settle(vmId, () => host.call('VM.create', { vmId, memoryMiB: 64 }), 'Up');
    const pid = runningPid(vms.filesOf(vmId)) ?? -1;
    const down = await settle(vmId, async () => process.kill(pid, 'SIGKILL'), 'Down');
    expect(down.end.alert.operationInfo.lastError).toEqual([130, `QEMU (pid ${pid}) ended without the agent asking: killed by SIGKILL`]);
    expect(down.end.alert.event).toMatchObject({ type: 'EXITED' });
  });

  it('records a guest paused behind the agent\'s back as Paused, and a resume as Up', async () => {
    const vmId = uniqueId('outside');
    await settle(vmId, () => host.call('VM.create', { vmId, memoryMiB: 64 }), 'Up');
    // Someone else on QEMU's monitor: the HMP `stop` reaches QEMU through the driver's connection.
    const paused = await settle(vmId, () => vms.humanMonitor(vmId, 'stop'), 'Paused');
    expect(paused.end.alert.event).toMatchObject({ type: 'STOPPED' });
    expect(paused.end.alert.operationInfo.lastError).toEqual([131, 'QEMU paused the guest without the agent asking (status "paused")']);
    const resumed = await settle(vmId, () => vms.humanMonitor(vmId, 'cont'), 'Up');
    expect(resumed.end.alert.event).toMatchObject({ type: 'RESUMED' });
    await settle(vmId, () => host.call('VM.destroy', { vmId }), 'Down');
  });

  it('pauses the VM with the seed\'s disk error when its storage goes away under the guest', async () => {
    const nbd = await startLoopingDiskExport(vmDir);
    try {
      const imageId = uniqueId('disk');
      const watchImage = await watchEntity(agent.nc, `vdsm.Storage.Image.${imageId}`);
      await host.call('Image.create', { imageId, size: 1024 * 1024 });
      await watchImage.until('OK', 0, 30_000);
      await watchImage.stop();
      // The image's data comes from the NBD export (a guest program that keeps reading its disk).
      const images = agent.images as QemuImageDriver;
      await run('qemu-img', ['rebase', '-u', '-f', 'qcow2', '-b', nbd.uri, '-F', 'raw', images.pathOf(imageId)]);

      const vmId = uniqueId('eio');
      await settle(vmId, () => host.call('VM.create', { vmId, memoryMiB: 64, disks: [{ imageId }] }), 'Up');
      await nbd.waitForReads(3);
      const paused = await settle(vmId, () => nbd.stop(), 'Paused');
      expect(paused.end.alert.event).toMatchObject({ type: 'IO_ERROR' });
      expect(paused.end.alert.operationInfo.lastError).toEqual([123, 'Error writing to disks']);
      expect(await vms.status(vmId)).toMatchObject({ status: 'io-error', running: false });
      // The image stays while a VM that may run uses it, and can go once the VM is down.
      await expect(host.call('Image.delete', { imageId })).rejects.toThrow(`image ${imageId} is a disk of VM ${vmId} (Paused); destroy the VM first`);
      await settle(vmId, () => host.call('VM.destroy', { vmId }), 'Down');
      const deleting = await watchEntity(agent.nc, `vdsm.Storage.Image.${imageId}`);
      await host.call('Image.delete', { imageId });
      await deleting.until('Absent', 0, 30_000);
      await deleting.stop();
    } finally {
      await nbd.stop();
    }
  });

  it('says what went wrong when QEMU is missing, will not start, or refuses a command', async () => {
    const launch = async (options: Partial<ConstructorParameters<typeof QemuVmDriver>[0]>, vmId: string) => {
      const driver = new QemuVmDriver({ vmDir, hostId: 'qemu-a', ...options });
      return new Promise((resolve) => driver.start({ kind: 'VM', id: vmId, work: 'powerUp', context: { params: { memoryMiB: 64 } }, resumed: false }, async (event) => {
        if (event.type !== 'WORK_PROGRESS') resolve(event);
      }, new AbortController().signal));
    };
    expect(await launch({ binary: '/nonexistent/qemu-system-x86_64' }, uniqueId('nobinary'))).toEqual({ type: 'WORK_FAILED', error: [127, QEMU_SYSTEM_HINT] });
    expect(await launch({ extraArgs: ['-no-such-option'] }, uniqueId('badargs'))).toEqual({
      type: 'WORK_FAILED',
      error: [1, expect.stringMatching(/^QEMU did not start: .*no-such-option/)],
    });
    const vmId = uniqueId('cmd');
    await settle(vmId, () => host.call('VM.create', { vmId, memoryMiB: 64 }), 'Up');
    await expect(vms.qmp(vmId, 'no-such-command')).rejects.toMatchObject({ name: 'QmpError', errorClass: 'CommandNotFound' });
    await settle(vmId, () => host.call('VM.destroy', { vmId }), 'Down');
  });

  it('runs a VM whose id is too long for a socket path in a directory named by its hash', async () => {
    const vmId = `long-${'x'.repeat(110)}`;
    await settle(vmId, () => host.call('VM.create', { vmId, memoryMiB: 64 }), 'Up');
    expect(vms.filesOf(vmId).dir).toMatch(/\/h-[0-9a-f]{24}$/);
    expect(await vms.status(vmId)).toMatchObject({ status: 'running' });
    await settle(vmId, () => host.call('VM.destroy', { vmId }), 'Down');
  });

  it('refuses bad VM definitions with a clear error', async () => {
    await expect(host.call('VM.create', { vmId: uniqueId('bad'), memoryMiB: 0 })).rejects.toThrow(/memoryMiB/);
    await expect(host.call('VM.create', { vmId: uniqueId('bad'), disks: [{ imageId: 'no-such-image' }] })).rejects.toThrow(/no-such-image does not exist/);
  });

  it('offers no simulator fault injection for VMs QEMU runs', async () => {
    await expect(host.call('Sim.injectFault', { vmId: uniqueId('real'), fault: 'EIO' })).rejects.toMatchObject({ code: ErrorCodes.MethodNotFound });
  });
});

describe.skipIf(!qemu.available)('QEMU VMs survive the agent', () => {
  it('re-attaches after kill -9 and after a clean stop: a guest paused meanwhile is recorded Paused, one gone Down, no second QEMU starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opstream-crash-'));
    const nc = await connectNats(server.url, 'qemu-restart-test');
    const args = ['--vm-driver', 'qemu', '--vm-dir', dir, '--host-id', 'crash-a'];
    let agentProcess: AgentProcess | undefined;
    let client: OpstreamClient | undefined;
    const startAgentProcess = async () => {
      agentProcess = await spawnAgent(server.url, args);
      client = await connect(agentProcess.url, { token: agentProcess.token });
      return client;
    };
    const until = async (vmId: string, call: () => Promise<unknown>, status: string) => {
      const watch = await watchEntity(nc, `vdsm.VM.${vmId}`);
      await call();
      const end = await watch.until(status, 0, 30_000);
      await watch.stop();
      return end;
    };
    try {
      const [running, paused, lost] = [uniqueId('keeps-running'), uniqueId('keeps-paused'), uniqueId('lost')];
      let api = await startAgentProcess();
      await until(lost, () => api.call('VM.create', { vmId: lost, memoryMiB: 64 }), 'Up');
      const lostPid = runningPid(qemuFiles(dir, lost)) ?? -1;
      await until(running, () => api.call('VM.create', { vmId: running, memoryMiB: 64 }), 'Up');
      await until(paused, () => api.call('VM.create', { vmId: paused, memoryMiB: 64 }), 'Up');
      await until(paused, () => api.call('VM.pause', { vmId: paused }), 'Paused');
      await client?.close();
      await agentProcess?.kill();
      // While no agent watches, one QEMU dies...
      process.kill(lostPid, 'SIGKILL');
      while (processRuns(lostPid)) await sleep(20);
      const pids = qemusUnder(dir).sort();
      expect(pids).toHaveLength(2);
      // ...and an operator pauses the running guest on QEMU's own monitor.
      const monitor = await QmpClient.connect(qemuFiles(dir, running).socket);
      await monitor.execute('stop');
      monitor.close();

      const lostWatch = await watchEntity(nc, `vdsm.VM.${lost}`);
      const recorded = await until(running, async () => (api = await startAgentProcess()), 'Paused');
      const gone = await lostWatch.until('Down', 0, 30_000);
      await lostWatch.stop();
      expect(gone.alert.event).toMatchObject({ type: 'EXITED' });
      expect(gone.alert.operationInfo.lastError).toEqual([130, `QEMU for VM ${lost} is not running: it ended while the agent was not watching`]);
      expect(recorded.alert.event).toMatchObject({ type: 'STOPPED' });
      expect(recorded.alert.operationInfo.lastError).toEqual([131, 'QEMU paused the guest without the agent asking (status "paused")']);
      expect((await api.vm.getInfo(paused)).status).toBe('Paused');
      expect(qemusUnder(dir).sort()).toEqual(pids);

      // The re-attached QEMUs obey the API: a continue is confirmed by QEMU's RESUME.
      await until(paused, () => api.call('VM.cont', { vmId: paused }), 'Up');
      await client?.close();
      await agentProcess?.stop();
      api = await startAgentProcess();
      expect((await api.vm.getInfo(paused)).status).toBe('Up');
      expect((await api.vm.getInfo(running)).status).toBe('Paused');
      await until(running, () => api.call('VM.cont', { vmId: running }), 'Up');
      expect(qemusUnder(dir).sort()).toEqual(pids);

      await until(running, () => api.call('VM.destroy', { vmId: running }), 'Down');
      await until(paused, () => api.call('VM.destroy', { vmId: paused }), 'Down');
      expect(qemusUnder(dir)).toEqual([]);
    } finally {
      await client?.close();
      await agentProcess?.kill();
      await nc.close();
      await killLeftoverQemus(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe.skipIf(!qemu.available)('QEMU live migration between two agents', () => {
  let dir: string;
  let source: Agent;
  let destination: Agent;
  let api: OpstreamClient;

  beforeAll(async () => {
    if (!qemu.available) return;
    dir = mkdtempSync(join(tmpdir(), 'opstream-mig-'));
    // Non-zero guest memory, so the transfer is not all zero pages (which QEMU sends as flags).
    const blob = join(dir, 'memory.bin');
    writeFileSync(blob, randomBytes(48 * 1024 * 1024));
    const qemuOptions = { extraArgs: ['-device', `loader,file=${blob},addr=0x1000000`], migrationMaxBandwidth: 32 * 1024 * 1024, migrationPollMs: 100 };
    const common = { natsUrl: server.url, root: process.cwd(), port: 0, vmDriver: 'qemu' as const, qemu: qemuOptions };
    source = await startAgent({ ...common, vmDir: join(dir, 'src'), hostId: 'mig-src' });
    destination = await startAgent({ ...common, vmDir: join(dir, 'dst'), hostId: 'mig-dst' });
    api = await connect(source.api.url, { token: source.credentials.operatorToken });
  });
  afterAll(async () => {
    await api?.close();
    await source?.stop();
    await destination?.stop();
    if (dir) {
      await killLeftoverQemus(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('migrates a guest with 48 MiB of data over TCP, reporting rising percentages from query-migrate, and the destination agent takes it up', async () => {
    const vmId = uniqueId('mig');
    const watch = await watchEntity(source.nc, `vdsm.VM.${vmId}`);
    await api.call('VM.create', { vmId, memoryMiB: 96 });
    const up = await watch.until('Up', 0, 30_000);
    await api.call('VM.migrate', { vmId, dstHost: 'mig-dst' });
    // The destination is an agent of the fleet: the VM goes on there, Up, in the same history.
    const arrived = await watch.until('Up', up.seq, 60_000);
    await watch.stop();
    expect(watch.alerts().some((alert) => alert.status === 'Migration Destination')).toBe(true);
    expect(arrived.alert.operationInfo.lastError).toEqual([0, '']);
    expect(await api.vm.getInfo(vmId)).toMatchObject({ status: 'Up', hostId: 'mig-dst' });

    const copying = watch.alerts().filter((alert) => alert.operationInfo.stageDescription === 'copying memory');
    const percentages = copying.map((alert) => alert.operationInfo.percentage);
    expect(new Set(percentages).size).toBeGreaterThanOrEqual(4);
    expect(percentages).toEqual([...percentages].sort((a, b) => a - b));
    expect(Math.max(...percentages)).toBeGreaterThan(50);

    const sourceDriver = source.vms as QemuVmDriver;
    expect(runningPid(sourceDriver.filesOf(vmId))).toBeUndefined();
    expect(await destination.vms?.status(vmId)).toMatchObject({ status: 'running', running: true });
    // The destination's agent owns the QEMU now: a pause asked of the source agent is forwarded
    // there, and QEMU itself confirms it.
    await api.vm.pause(vmId);
    for (let tries = 0; (await api.vm.getInfo(vmId)).status !== 'Paused' && tries < 100; tries += 1) await sleep(50);
    expect(await destination.vms?.status(vmId)).toMatchObject({ status: 'paused', running: false });
  }, 120_000);

  it('cancelling the copy is QMP migrate_cancel: the guest runs on at the source', async () => {
    const vmId = uniqueId('migcancel');
    const watch = await watchEntity(source.nc, `vdsm.VM.${vmId}`);
    await api.call('VM.create', { vmId, memoryMiB: 96 });
    await watch.until('Up', 0, 30_000);
    await watch.stop();
    // The work's signal aborted, as the runtime aborts it when a copy's state is left.
    const driver = source.vms as QemuVmDriver;
    const ref = { kind: 'VM' as const, id: vmId };
    const context = { params: { memoryMiB: 96 }, dstHost: 'mig-dst' };
    const prepared = await new Promise((resolve) => driver.start({ ...ref, work: 'prepareMigration', context, resumed: false }, async (event) => resolve(event), new AbortController().signal));
    expect(prepared).toEqual({ type: 'WORK_DONE' });
    const dstPid = (await destination.vms?.status(vmId))?.pid ?? -1;
    const events: string[] = [];
    // The runtime's own stop signal: the migration's listener is the one a driver adds directly.
    const copy = new WorkStop((error) => {
      throw error;
    });
    await new Promise<void>((resolve) => {
      driver.start({ ...ref, work: 'copyMemory', context, resumed: false }, async (event) => {
        events.push(event.type);
        if (event.type === 'WORK_PROGRESS' && Number(event['percentage']) > 0) resolve();
      }, copy);
    });
    copy.abort();
    for (let tries = 0; (await driver.qmp(vmId, 'query-migrate')).status !== 'cancelled' && tries < 100; tries += 1) await sleep(50);
    expect(await driver.qmp(vmId, 'query-migrate')).toMatchObject({ status: 'cancelled' });
    expect(await driver.status(vmId)).toMatchObject({ status: 'running', running: true });
    expect(events).not.toContain('WORK_DONE');
    // The destination QEMU gives up on its own once the stream is cut.
    for (let tries = 0; processRuns(dstPid) && tries < 200; tries += 1) await sleep(50);
    expect(processRuns(dstPid)).toBe(false);
  }, 120_000);

  it('a destination QEMU that dies mid-copy fails the migration; the VM runs on at the source', async () => {
    const vmId = uniqueId('migdies');
    const watch = await watchEntity(source.nc, `vdsm.VM.${vmId}`);
    await api.call('VM.create', { vmId, memoryMiB: 96 });
    const up = await watch.until('Up', 0, 30_000);
    await api.call('VM.migrate', { vmId, dstHost: 'mig-dst' });
    await copyProgress(watch);
    process.kill((await destination.vms?.status(vmId))?.pid ?? -1, 'SIGKILL');
    const failed = await watch.until('Up', up.seq, 30_000);
    await watch.stop();
    expect(failed.alert.operationInfo.lastError[0]).toBe(132);
    expect(failed.alert.operationInfo.lastError[1]).toMatch(/^migration failed/);
    // The dead QEMU was the destination's, and the VM is not the destination agent's to record.
    expect(watch.alerts().map((alert) => (alert.event as { type: string }).type)).not.toContain('EXITED');
    expect(await source.vms?.status(vmId)).toMatchObject({ status: 'running', running: true });
    await api.call('VM.destroy', { vmId });
  }, 120_000);

  it('a destroy during the copy cancels the migration and ends both QEMUs', async () => {
    const vmId = uniqueId('migdestroy');
    const watch = await watchEntity(source.nc, `vdsm.VM.${vmId}`);
    await api.call('VM.create', { vmId, memoryMiB: 96 });
    const up = await watch.until('Up', 0, 30_000);
    const sourcePid = (await source.vms?.status(vmId))?.pid ?? -1;
    await api.call('VM.migrate', { vmId, dstHost: 'mig-dst' });
    await copyProgress(watch);
    const dstPid = (await destination.vms?.status(vmId))?.pid ?? -1;
    await api.call('VM.destroy', { vmId });
    const down = await watch.until('Down', up.seq, 30_000);
    await watch.stop();
    expect(down.alert.operationInfo.lastError).toEqual([0, '']);
    expect(watch.alerts().map((alert) => alert.status)).toContain('Powering down');
    expect(processRuns(sourcePid)).toBe(false);
    for (let tries = 0; processRuns(dstPid) && tries < 200; tries += 1) await sleep(50);
    expect(processRuns(dstPid)).toBe(false);

  }, 120_000);
});

describe.skipIf(!qemu.available)('QEMU migration failures', () => {
  it('fails a migration to a host no agent answers for, and the VM runs on', async () => {
    const vmId = uniqueId('nowhere');
    await settle(vmId, () => host.call('VM.create', { vmId, memoryMiB: 64 }), 'Up');
    const watch = await watchEntity(agent.nc, `vdsm.VM.${vmId}`);
    await host.call('VM.migrate', { vmId, dstHost: 'no-such-host' });
    const failed = await watch.until('Up', 0, 60_000);
    await watch.stop();
    expect(failed.alert.operationInfo.lastError[0]).toBe(132);
    expect(failed.alert.operationInfo.lastError[1]).toMatch(/host no-such-host did not answer/);
    expect(await vms.status(vmId)).toMatchObject({ status: 'running' });
    await settle(vmId, () => host.call('VM.destroy', { vmId }), 'Down');
  }, 60_000);
});

/** Waits until a migration's copy has reported progress. */
async function copyProgress(watch: { alerts(): Array<{ operationInfo: { stageDescription: string; percentage: number } }> }): Promise<void> {
  for (let tries = 0; !watch.alerts().some((alert) => alert.operationInfo.stageDescription === 'copying memory' && alert.operationInfo.percentage > 0); tries += 1) {
    if (tries > 600) throw new Error('the copy never made progress');
    await sleep(25);
  }
}
