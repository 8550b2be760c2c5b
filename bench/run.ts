// `npm run bench`: every benchmark, each against its own nats-server, figures and ratios printed.
import { report } from './report.ts';
import { benchTransitions } from './transitions.ts';

report('write path: VMs created and paused/continued, simulated driver with 0 ms ticks', await benchTransitions({ vms: 300, pauseCycles: 5 }));
