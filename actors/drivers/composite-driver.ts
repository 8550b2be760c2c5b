// One driver in front of several: each work goes to the driver configured for its entity kind.
import type { EntityKind } from '../../src/domain/subjects.ts';
import type { Driver, EntityEventSink, WorkReporter, WorkRequest, WorkSignal } from './driver.ts';

/**
 * Every kind but jobs, whose work (running their steps) the runtime does itself, and VM disks,
 * which have no work of their own (their VM's driver reports on them).
 */
export type DriverKinds = Record<Exclude<EntityKind, 'Job' | 'VM.Disk'>, Driver>;

/** Routes each work to the driver configured for its entity kind. */
export class CompositeDriver implements Driver {
  constructor(private readonly drivers: DriverKinds) {}

  start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
    const driver = (this.drivers as Partial<Record<EntityKind, Driver>>)[request.kind];
    if (!driver) throw new Error(`no driver for ${request.kind}`);
    driver.start(request, report, signal);
  }

  connect(sink: EntityEventSink): void {
    for (const driver of new Set(Object.values(this.drivers))) driver.connect?.(sink);
  }
}
