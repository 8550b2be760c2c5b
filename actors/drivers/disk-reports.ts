// The storage side of a VM's migration, reported on each of the VM's disks
// (`vdsm.VM.<vmId>.Disk.<diskId>`): a VM driver tells this when the VM's memory copy begins,
// progresses, ends or fails, and it sends each disk's event through the runtime's sink — the
// seed's "all the information is available on the image operationInfo". Each disk's reports go
// out one after another, so its alerts keep their order.
import { EntityKinds, subObjectId } from '../../src/domain/subjects.ts';
import type { ErrorTuple } from '../../machines/entity.ts';
import { STORAGE_MIGRATION_ABORTED, type VmDiskEvent } from '../../machines/vm-disk.ts';
import type { Logger } from '../../src/log.ts';
import type { EntityEventSink, EntityRef, WorkRequest } from './driver.ts';

/** A disk in a VM definition: an Image entity (`imageId`) or a disk known by its own id. */
export type VmDiskDefinition = { diskId?: string; imageId?: string };

type Migrating = { disks: Array<{ ref: EntityRef; imageId?: string }> };

/** The disks of a VM's definition (its create params), each with the id its alerts carry. */
export function disksOf(request: WorkRequest): Array<{ diskId: string; imageId?: string }> {
  const params = (request.context['params'] ?? {}) as { disks?: VmDiskDefinition[] };
  return (params.disks ?? []).flatMap(({ diskId, imageId }) => {
    const id = diskId ?? imageId;
    return id ? [{ diskId: id, ...(imageId ? { imageId } : {}) }] : [];
  });
}

export class DiskReports {
  readonly #migrating = new Map<string, Migrating>();
  readonly #chains = new Map<string, Promise<void>>();

  constructor(
    private readonly sink: () => EntityEventSink | undefined,
    private readonly logger?: Logger,
  ) {}

  /** The VM's memory copy (`copyMemory`) starts: each disk starts migrating with it. */
  async begin(request: WorkRequest): Promise<void> {
    const disks = disksOf(request).map(({ diskId, imageId }) => ({ ref: { kind: EntityKinds.VMDisk, id: subObjectId(request.id, diskId) }, imageId }));
    if (disks.length === 0) return;
    this.#migrating.set(request.id, { disks });
    const dstHost = typeof request.context['dstHost'] === 'string' ? request.context['dstHost'] : 'unknown';
    const task = request.context['task'] as { id?: string } | null | undefined;
    await this.#all(request.id, ({ imageId }) => ({
      type: 'STORAGE_MIGRATION_STARTED',
      vmId: request.id,
      dstHost,
      ...(imageId ? { imageId } : {}),
      ...(task?.id ? { taskId: task.id } : {}),
    }));
  }

  async progress(vmId: string, percentage: number): Promise<void> {
    await this.#all(vmId, () => ({ type: 'STORAGE_PROGRESS', percentage }));
  }

  async done(vmId: string): Promise<void> {
    await this.#all(vmId, () => ({ type: 'STORAGE_DONE' }));
    this.#migrating.delete(vmId);
  }

  async fail(vmId: string, error: ErrorTuple): Promise<void> {
    await this.#all(vmId, () => ({ type: 'STORAGE_FAILED', error }));
    this.#migrating.delete(vmId);
  }

  /**
   * The VM moved on to `work` while its disks were still migrating (the migration was cancelled,
   * failed, or the VM destroyed): their copy ended with it.
   */
  async settle(vmId: string, work: string): Promise<void> {
    if (!this.#migrating.has(vmId)) return;
    await this.fail(vmId, [STORAGE_MIGRATION_ABORTED, `the VM's migration ended before the disk's data was copied (the VM went on to "${work}")`]);
  }

  async #all(vmId: string, event: (disk: { imageId?: string }) => VmDiskEvent): Promise<void> {
    const migrating = this.#migrating.get(vmId);
    if (!migrating) return;
    await Promise.all(migrating.disks.map((disk) => this.#send(disk.ref, event(disk))));
  }

  /** One disk's reports in order; a refused one is logged and dropped, never thrown at the VM. */
  #send(ref: EntityRef, event: VmDiskEvent): Promise<void> {
    const key = `${ref.kind}.${ref.id}`;
    const sink = this.sink();
    const previous = this.#chains.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      if (!sink) return;
      try {
        await sink(ref, event);
      } catch (error) {
        this.logger?.warn('could not report on a VM disk', { kind: ref.kind, id: ref.id, event: event.type, error: String(error) });
      }
    });
    this.#chains.set(key, next);
    void next.then(() => {
      if (this.#chains.get(key) === next) this.#chains.delete(key);
    });
    return next;
  }
}
