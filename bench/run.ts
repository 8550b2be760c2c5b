// `npm run bench`: every benchmark, each against its own nats-server, figures and ratios printed.
// BENCH_ENTITIES and BENCH_ALERTS_PER_ENTITY scale the recovery benchmark (default 10,000 × 100);
// BENCH_ONLY=write,recovery,clients,jobs,viz,qemu runs a subset; `qemu` (real VMs) runs when qemu-system-x86_64 is there.
import { benchCatchUp, benchFanOut, benchWireMessages } from './clients.ts';
import { qemuSystemAvailable } from '../actors/drivers/qemu-process.ts';
import { benchJobs } from './jobs.ts';
import { benchQemu } from './qemu.ts';
import { benchRecovery } from './recovery.ts';
import { report } from './report.ts';
import { benchTransitions } from './transitions.ts';
import { benchViz } from './viz.ts';

const entities = Number(process.env['BENCH_ENTITIES'] ?? 10_000);
const alertsPerEntity = Number(process.env['BENCH_ALERTS_PER_ENTITY'] ?? 100);
const only = new Set((process.env['BENCH_ONLY'] ?? 'write,recovery,clients,jobs,viz,qemu').split(','));

if (only.has('write')) {
  report('write path: VMs created and paused/continued, simulated driver with 0 ms ticks', await benchTransitions({ vms: 300, pauseCycles: 5 }));
}
if (only.has('recovery')) {
  // The title says what was seeded and replayed, which a VM's lifecycle may make more than asked.
  const recovery = await benchRecovery({ entities, alertsPerEntity });
  report(recovery.title, recovery.figures);
}
if (only.has('clients')) {
  report('fan-out: append → WebSocket delivery under ~300 calls/s of steady load', await benchFanOut([1, 10, 100], 3, 300));
  report('catch-up after a 100,000-alert outage', await benchCatchUp(100_000));
  report('wire messages: 50 VMs, one create each at a random time in a 12 s window', await benchWireMessages(50, 12));
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
