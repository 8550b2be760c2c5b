// A copy whose source image is a VM's disk shows on that disk (`vdsm.VM.<vmId>.Disk.<imageId>`):
// whichever image driver does the copy — simulated or qemu-img — its reports on the destination
// are mirrored onto the disks it reads, each disk's first. A cancelled or interrupted copy ends
// the disks' part too. Only VMs that are not Down hold their disks (as Image.delete sees it).
import { entityKey, EntityKinds } from '../src/domain/subjects.ts';
import type { Logger } from '../src/log.ts';
import { diskRef, DiskReports, type InvolvedDisk } from './drivers/disk-reports.ts';
import type { Driver, EntityEventSink, WorkReporter, WorkRequest, WorkSignal } from './drivers/driver.ts';

export type CopyDiskReportsOptions = {
  /** The VM disks that are image `imageId` now: each VM's id and the disk's id in it. */
  disksReading(imageId: string): Array<{ vmId: string; diskId: string }>;
  sink: EntityEventSink;
  logger?: Logger;
};

export function reportCopiesOnDisks(driver: Driver, options: CopyDiskReportsOptions): Driver {
  const reports = new DiskReports(() => options.sink, options.logger);
  return {
    start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
      if (request.kind !== EntityKinds.Image) return driver.start(request, report, signal);
      const operation = entityKey(request);
      if (request.work !== 'copyImage') {
        // The copy was cancelled or failed and its image moved on: the disks' part ended with it.
        if (!reports.running(operation)) return driver.start(request, report, signal);
        const settled = reports.settle(operation, request.work);
        return driver.start(
          request,
          async (event) => {
            await settled;
            return report(event);
          },
          signal,
        );
      }
      const ready = reports.begin(operation, involved(request, options));
      return driver.start(
        request,
        async (event) => {
          await ready;
          if (event.type === 'WORK_PROGRESS' && typeof event['percentage'] === 'number') await reports.progress(operation, event['percentage']);
          else if (event.type === 'WORK_DONE') await reports.done(operation);
          else if (event.type === 'WORK_FAILED') await reports.fail(operation, event['error'] as [number, string]);
          return report(event);
        },
        signal,
      );
    },
    connect: driver.connect?.bind(driver),
  };
}

function involved(request: WorkRequest, options: CopyDiskReportsOptions): InvolvedDisk[] {
  const source = request.context['sourceImageId'];
  if (typeof source !== 'string') return [];
  const task = request.context['task'] as { id?: string } | null | undefined;
  const operation = entityKey(request);
  return options.disksReading(source).map(({ vmId, diskId }) => ({
    ref: diskRef(vmId, diskId),
    started: { type: 'STORAGE_COPY_STARTED', operation, vmId, imageId: source, dstImageId: request.id, ...(task?.id ? { taskId: task.id } : {}) },
  }));
}
