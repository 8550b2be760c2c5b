// A VM migrated to another agent of the fleet goes on there: when the memory copy ends and the
// destination is a live agent, the copy's WORK_DONE says so (`handOverTo`), and the VM machine
// moves to MigrationDestination — whose work its owner hands to that agent. Whether the
// destination runs an agent is the fleet's knowledge, not the hypervisor's: it is added here,
// above any driver, and recorded with the event so replay takes the same branch.
import { EntityKinds } from '../src/domain/subjects.ts';
import type { Driver, WorkReporter, WorkRequest, WorkSignal } from './drivers/driver.ts';

export function handOverMigrations(driver: Driver, fleet: { hostId: string; isLive(hostId: string): boolean }): Driver {
  return {
    start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
      if (request.kind !== EntityKinds.VM || request.work !== 'copyMemory') return driver.start(request, report, signal);
      const dstHost = request.context['dstHost'];
      return driver.start(
        request,
        (event) => {
          if (event.type !== 'WORK_DONE' || typeof dstHost !== 'string' || dstHost === fleet.hostId || !fleet.isLive(dstHost)) return report(event);
          const output = (event as { output?: Record<string, unknown> }).output;
          return report({ ...event, output: { ...output, handOverTo: dstHost } });
        },
        signal,
      );
    },
    connect: driver.connect?.bind(driver),
  };
}
