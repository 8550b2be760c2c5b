// `npm run bench`: every benchmark, each against its own nats-server, figures and ratios printed.
// BENCH_ENTITIES and BENCH_ALERTS_PER_ENTITY scale the recovery benchmark (default 10,000 × 100).
import { benchRecovery } from './recovery.ts';
import { report } from './report.ts';
import { benchTransitions } from './transitions.ts';

const entities = Number(process.env['BENCH_ENTITIES'] ?? 10_000);
const alertsPerEntity = Number(process.env['BENCH_ALERTS_PER_ENTITY'] ?? 100);

report('write path: VMs created and paused/continued, simulated driver with 0 ms ticks', await benchTransitions({ vms: 300, pauseCycles: 5 }));
report(`recovery: ${entities.toLocaleString('en-US')} entities, ${(entities * alertsPerEntity).toLocaleString('en-US')} alerts`, await benchRecovery({ entities, alertsPerEntity }));
