// The real VM driver: one qemu-system-x86_64 per VM, driven over QMP. Every transition asserted
// here is one QEMU confirmed (its STOP/RESUME events, its process gone), not one the agent assumed.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QEMU_SYSTEM_HINT, runningPid } from '../actors/drivers/qemu-process.ts';
import type { QemuVmDriver } from '../actors/drivers/qemu-vm-driver.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { watchEntity } from './helpers/entity-alerts.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { killLeftoverQemus } from './helpers/qemu.ts';
import { requireTool } from './helpers/requirements.ts';

const qemu = requireTool('qemu-system-x86_64', QEMU_SYSTEM_HINT);

let server: NatsTestServer;
let agent: Agent;
let host: OpstreamClient;
let vms: QemuVmDriver;
let vmDir: string;

beforeAll(async () => {
  if (!qemu.available) return;
  server = await NatsTestServer.start();
  vmDir = mkdtempSync(join(tmpdir(), 'opstream-vms-'));
  agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, vmDriver: 'qemu', vmDir, hostId: 'qemu-a' });
  host = await connect(agent.api.url);
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

  it('refuses bad VM definitions with a clear error', async () => {
    await expect(host.call('VM.create', { vmId: uniqueId('bad'), memoryMiB: 0 })).rejects.toThrow(/memoryMiB/);
    await expect(host.call('VM.create', { vmId: uniqueId('bad'), disks: [{ imageId: 'no-such-image' }] })).rejects.toThrow(/no-such-image does not exist/);
  });
});
