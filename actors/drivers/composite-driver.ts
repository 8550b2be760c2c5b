import type { EntityKind } from '../../src/domain/subjects.ts';
import type { Driver, EntityEventSink, WorkHandle, WorkReporter, WorkRequest } from './driver.ts';

/** Routes each work to the driver configured for its entity kind. */
export class CompositeDriver implements Driver {
  constructor(private readonly drivers: Record<EntityKind, Driver>) {}

  start(request: WorkRequest, report: WorkReporter): WorkHandle {
    return this.drivers[request.kind].start(request, report);
  }

  connect(sink: EntityEventSink): void {
    for (const driver of new Set(Object.values(this.drivers))) driver.connect?.(sink);
  }
}
