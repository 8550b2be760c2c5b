// The QEMU VM driver, measured: VM.create to Up, pause and cont through the API against QMP's own
// stop→STOP and cont→RESUME on a bare QEMU (a ratio, in one run), and a 256 MiB migration between
// two agents at a fixed bandwidth cap — its duration and how many alerts it made.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultAccel, launchQemu, qemuFiles } from '../actors/drivers/qemu-process.ts';
import { killPid } from '../actors/drivers/qemu-vm.ts';
import { QmpClient } from '../actors/drivers/qmp.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { watchEntity } from '../test/helpers/entity-alerts.ts';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import { killLeftoverQemus } from '../test/helpers/qemu.ts';
import type { Figure } from './report.ts';

const MiB = 1024 * 1024;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

export type QemuBenchOptions = { vms: number; cycles: number; migrationMiB: number; bandwidthMiBs: number };

export async function benchQemu(options: QemuBenchOptions): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'opstream-bench-qemu-'));
  const server = await NatsTestServer.start();
  const agents: Agent[] = [];
  const clients: OpstreamClient[] = [];
  try {
    // The guest's memory is filled with random data, so the migration moves real pages.
    const blob = join(dir, 'memory.bin');
    writeFileSync(blob, randomBytes((options.migrationMiB - 32) * MiB));
    const filled = { extraArgs: ['-device', `loader,file=${blob},addr=0x1000000`], migrationMaxBandwidth: options.bandwidthMiBs * MiB };
    const start = (hostId: string, qemu = {}) =>
      startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, vmDriver: 'qemu', vmDir: join(dir, hostId), hostId, qemu });
    // Plain small guests for create/pause/cont; guests full of data for the migration.
    const plain = await start('bench-plain');
    const source = await start('bench-src', filled);
    const destination = await start('bench-dst', filled);
    agents.push(plain, source, destination);
    const api = await connect(plain.api.url, { token: plain.credentials.operatorToken });
    const migrationApi = await connect(source.api.url, { token: source.credentials.operatorToken });
    clients.push(api, migrationApi);

    const settle = async (vmId: string, call: () => Promise<unknown>, status: string) => {
      const watch = await watchEntity(plain.nc, `vdsm.VM.${vmId}`);
      const began = performance.now();
      await call();
      await watch.until(status, 0, 120_000);
      const ms = performance.now() - began;
      await watch.stop();
      return { ms, alerts: watch.alerts().length };
    };

    const createMs: number[] = [];
    for (let i = 0; i < options.vms; i += 1) {
      createMs.push((await settle(`bench-${i}`, () => api.call('VM.create', { vmId: `bench-${i}`, memoryMiB: 128 }), 'Up')).ms);
    }
    const pauseMs: number[] = [];
    const contMs: number[] = [];
    for (let i = 0; i < options.cycles; i += 1) {
      pauseMs.push((await settle('bench-0', () => api.call('VM.pause', { vmId: 'bench-0' }), 'Paused')).ms);
      contMs.push((await settle('bench-0', () => api.call('VM.cont', { vmId: 'bench-0' }), 'Up')).ms);
    }
    const qmp = await bareQmpRoundTrips(dir, options.cycles);

    for (let i = 0; i < options.vms; i += 1) await settle(`bench-${i}`, () => api.call('VM.destroy', { vmId: `bench-${i}` }), 'Down');

    await settle('bench-mig', () => migrationApi.call('VM.create', { vmId: 'bench-mig', memoryMiB: options.migrationMiB }), 'Up');
    // The destination is an agent of the fleet: the migration ends with the VM Up there.
    const migration = await settle('bench-mig', () => migrationApi.call('VM.migrate', { vmId: 'bench-mig', dstHost: 'bench-dst' }), 'Up');
    const apiRoundTrip = median(pauseMs) + median(contMs);
    const qmpRoundTrip = median(qmp.stopMs) + median(qmp.contMs);
    return [
      { name: `VM.create → Up, 128 MiB (median of ${options.vms}, ${defaultAccel()})`, value: median(createMs), unit: 'ms', detail: `min ${Math.min(...createMs).toFixed(0)}, max ${Math.max(...createMs).toFixed(0)}` },
      { name: 'VM.pause → Paused alert (median)', value: median(pauseMs), unit: 'ms' },
      { name: 'VM.cont → Up alert (median)', value: median(contMs), unit: 'ms' },
      { name: 'QMP stop → STOP event (median, bare QEMU)', value: median(qmp.stopMs), unit: 'ms' },
      { name: 'QMP cont → RESUME event (median, bare QEMU)', value: median(qmp.contMs), unit: 'ms' },
      { name: 'pause+cont through the API / through QMP alone', value: apiRoundTrip / qmpRoundTrip, unit: '×', detail: `${apiRoundTrip.toFixed(1)} ms vs ${qmpRoundTrip.toFixed(2)} ms` },
      { name: `migration of a ${options.migrationMiB} MiB guest at ${options.bandwidthMiBs} MiB/s`, value: migration.ms / 1000, unit: 's', detail: `${options.migrationMiB - 32} MiB random data` },
      { name: 'alerts of that migration (from the call to Up on the destination agent)', value: migration.alerts, unit: 'msgs' },
    ];
  } finally {
    for (const client of clients) await client.close();
    for (const agent of agents) await agent.stop();
    await server.stop();
    await killLeftoverQemus(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** QMP's own pause and resume round trips on a QEMU no agent drives: the floor for the API's. */
async function bareQmpRoundTrips(dir: string, cycles: number): Promise<{ stopMs: number[]; contMs: number[] }> {
  const files = qemuFiles(join(dir, 'bare'), 'bare');
  const child = launchQemu({ vmId: 'bare', files, memoryMiB: 64, cpus: 1, disks: [], startPaused: false, accel: defaultAccel(), binary: 'qemu-system-x86_64', extraArgs: [] });
  const qmp = await QmpClient.connectWhenReady(files.socket, { timeoutMs: 20_000, alive: () => child.exitCode === null });
  const stopMs: number[] = [];
  const contMs: number[] = [];
  try {
    for (let i = 0; i < cycles; i += 1) {
      for (const [command, event, into] of [['stop', 'STOP', stopMs], ['cont', 'RESUME', contMs]] as const) {
        const began = performance.now();
        const seen = qmp.waitForEvent(event, 10_000);
        await qmp.execute(command);
        await seen;
        into.push(performance.now() - began);
      }
    }
  } finally {
    qmp.close();
    if (child.pid !== undefined) {
      child.kill('SIGTERM');
      await killPid(child.pid, 3_000);
    }
  }
  return { stopMs, contMs };
}
