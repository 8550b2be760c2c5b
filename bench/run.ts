// `npm run bench`: every benchmark, each against its own nats-server, figures and ratios printed.
// BENCH_ENTITIES and BENCH_ALERTS_PER_ENTITY scale the recovery benchmark (default 10,000 × 100);
// BENCH_WRITE_VMS, BENCH_WRITE_CYCLES and BENCH_WRITE_ROUNDS scale the write benchmark (default 300 × 5, 7 rounds), and
// BENCH_CPU_PROFILE=<file> writes a CPU profile of its runtime phase;
// BENCH_ONLY=write,api,recovery,clients,jobs,viz,qemu,fleet runs a subset; `qemu` (real VMs) runs when qemu-system-x86_64 is there.
import { benchApiLoad } from './api-load.ts';
import { benchCatchUp, benchFanOut, benchWireMessages } from './clients.ts';
import { qemuSystemAvailable } from '../actors/drivers/qemu-process.ts';
import { benchFleet } from './fleet.ts';
import { benchJobs } from './jobs.ts';
import { benchQemu } from './qemu.ts';
import { benchRecovery } from './recovery.ts';
import { report, type Figure } from './report.ts';
import { benchTransitions } from './transitions.ts';
import { benchViz } from './viz.ts';

const entities = Number(process.env['BENCH_ENTITIES'] ?? 10_000);
const alertsPerEntity = Number(process.env['BENCH_ALERTS_PER_ENTITY'] ?? 100);
const only = new Set((process.env['BENCH_ONLY'] ?? 'write,api,recovery,clients,jobs,viz,qemu,fleet').split(','));

if (only.has('write')) {
  const vms = Number(process.env['BENCH_WRITE_VMS'] ?? 300);
  const pauseCycles = Number(process.env['BENCH_WRITE_CYCLES'] ?? 5);
  // Seven: one round takes under half a second and swings by ±0.1×; the median of seven swings far less than of three.
  const rounds = Number(process.env['BENCH_WRITE_ROUNDS'] ?? 7);
  report(
    `write path: ${vms} VMs at once, each created then paused/continued ${pauseCycles} times (every call and driver report a sealed, guarded append), after an unmeasured warm-up on ${vms} others; simulated driver with 0 ms ticks; ${rounds} rounds of runtime then raw, fresh VMs each`,
    await benchTransitions({ vms, pauseCycles, rounds }),
  );
}
if (only.has('api')) {
  report('API under load: 64 WebSocket callers (in a worker thread), each calling VM.create on fresh ids for 4 s, one call at a time; simulated driver with 5 ms ticks; 3 rounds of API then raw, each side alone', await benchApiLoad({ callers: 64, seconds: 4, rounds: 3 }));
}
if (only.has('recovery')) {
  // The title says what was seeded and replayed, which a VM's lifecycle may make more than asked.
  const recovery = await benchRecovery({ entities, alertsPerEntity });
  report(recovery.title, recovery.figures);
}
if (only.has('clients')) {
  report('fan-out: JetStream ack of an append → its notification read by a WebSocket client (clients in a worker thread), 3 s of ~300 calls/s on 40 VMs', await benchFanOut([1, 10, 100], 3, 300));
  report('catch-up after a 100,000-alert outage', await benchCatchUp(100_000));
  const wire: Figure[] = [];
  for (const idle of [50, 500, 5_000]) wire.push(...(await benchWireMessages(50, 12, idle)));
  report('wire messages per tracked operation: 50 VMs, one create each at a random time in a 12 s window', wire);
}
if (only.has('jobs')) {
  report('jobs: job layer overhead, and cancel latency under ~300 calls/s of background load', await benchJobs({ vms: 200, cycles: 5, cancels: 200, backgroundPerSecond: 300 }));
}
if (only.has('qemu')) {
  if (qemuSystemAvailable()) {
    report('QEMU VMs: create, pause/cont through the API vs QMP alone, a 256 MiB live migration at 64 MiB/s', await benchQemu({ vms: 3, cycles: 5, migrationMiB: 256, bandwidthMiBs: 64 }));
  } else {
    console.log('\nQEMU VMs: skipped (qemu-system-x86_64 not found: apt-get install qemu-system-x86)');
  }
}
if (only.has('viz')) {
  report('visualizer: 1,000 VMs on the page in headless chromium under ~300 alerts/s', await benchViz(1_000, 300, 10));
}
if (only.has('fleet')) {
  report('fleet: 1, 2 and 4 agents on one 3-node cluster (replicas 3), and one agent\'s recovery over 10,000 entities', await benchFleet({ agentCounts: [1, 2, 4], vmsPerAgent: 200, pauseCycles: 10, recoveryEntities: 10_000, alertsPerEntity: Number(process.env['BENCH_FLEET_ALERTS_PER_ENTITY'] ?? 20) }));
}
