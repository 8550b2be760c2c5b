// The storage side of an operation, reported on the VM disks it involves
// (`vdsm.VM.<vmId>.Disk.<diskId>`): a VM's migration moves all its disks, a copy reads an image
// that is some VM's disk. Whoever does the operation's work tells this when it begins,
// progresses, ends or fails, and each disk's event goes through the runtime's sink — the seed's
// "all the information is available on the image operationInfo". Each disk's reports go out one
// after another, so its alerts keep their order.
import { entityKey, EntityKinds, subObjectId } from '../../src/domain/subjects.ts';
import type { ErrorTuple } from '../../machines/entity.ts';
import { STORAGE_OPERATION_ABORTED, type VmDiskEvent } from '../../machines/vm-disk.ts';
import type { Logger } from '../../src/log.ts';
import type { EntityEventSink, EntityRef, WorkRequest } from './driver.ts';

/** A disk in a VM definition: an Image entity (`imageId`) or a disk known by its own id. */
export type VmDiskDefinition = { diskId?: string; imageId?: string };

/** One disk an operation involves, and the event that starts the operation on it. */
export type InvolvedDisk = { ref: EntityRef; started: VmDiskEvent };

/** The disks of a VM's definition (its create params), each with the id its alerts carry. */
export function disksOf(params: unknown): Array<{ diskId: string; imageId?: string }> {
  const { disks } = (params ?? {}) as { disks?: VmDiskDefinition[] };
  return (disks ?? []).flatMap(({ diskId, imageId }) => {
    const id = diskId ?? imageId;
    return id ? [{ diskId: id, ...(imageId ? { imageId } : {}) }] : [];
  });
}

export const diskRef = (vmId: string, diskId: string): EntityRef => ({ kind: EntityKinds.VMDisk, id: subObjectId(vmId, diskId) });

/** A VM's migration (`copyMemory`) moves every disk of its definition. */
export function migratingDisks(request: WorkRequest): InvolvedDisk[] {
  const operation = entityKey(request);
  const dstHost = typeof request.context['dstHost'] === 'string' ? request.context['dstHost'] : 'unknown';
  const task = request.context['task'] as { id?: string } | null | undefined;
  return disksOf(request.context['params']).map(({ diskId, imageId }) => ({
    ref: diskRef(request.id, diskId),
    started: {
      type: 'STORAGE_MIGRATION_STARTED',
      operation,
      vmId: request.id,
      dstHost,
      ...(imageId ? { imageId } : {}),
      ...(task?.id ? { taskId: task.id } : {}),
    },
  }));
}

export class DiskReports {
  /** Per operation (its entity's key), the disks it still reports on. */
  readonly #running = new Map<string, InvolvedDisk[]>();
  readonly #chains = new Map<string, Promise<boolean>>();

  constructor(
    private readonly sink: () => EntityEventSink | undefined,
    private readonly logger?: Logger,
  ) {}

  /**
   * `operation` (the key of the entity whose work it is) begins on `disks`. A disk already in
   * another operation refuses it, and hears nothing more of this one.
   */
  async begin(operation: string, disks: InvolvedDisk[]): Promise<void> {
    if (disks.length === 0) return;
    const accepted = await Promise.all(disks.map((disk) => this.#send(disk.ref, disk.started)));
    const taking = disks.filter((_, i) => accepted[i]);
    if (taking.length > 0) this.#running.set(operation, taking);
  }

  running(operation: string): boolean {
    return this.#running.has(operation);
  }

  async progress(operation: string, percentage: number): Promise<void> {
    await this.#all(operation, () => ({ type: 'STORAGE_PROGRESS', operation, percentage }));
  }

  async done(operation: string): Promise<void> {
    await this.#all(operation, () => ({ type: 'STORAGE_DONE', operation }));
    this.#running.delete(operation);
  }

  async fail(operation: string, error: ErrorTuple): Promise<void> {
    await this.#all(operation, () => ({ type: 'STORAGE_FAILED', operation, error }));
    this.#running.delete(operation);
  }

  /**
   * The operation's entity moved on to `work` while its disks were still in it (it was
   * cancelled, failed, or the VM destroyed): their part ended with it.
   */
  async settle(operation: string, work: string): Promise<void> {
    if (!this.#running.has(operation)) return;
    await this.fail(operation, [STORAGE_OPERATION_ABORTED, `the operation ended before the disk's part of it did (its entity went on to "${work}")`]);
  }

  async #all(operation: string, event: (disk: InvolvedDisk) => VmDiskEvent): Promise<void> {
    const disks = this.#running.get(operation);
    if (!disks) return;
    await Promise.all(disks.map((disk) => this.#send(disk.ref, event(disk))));
  }

  /** One disk's reports in order; a refused one is logged and dropped (false), never thrown at the work. */
  #send(ref: EntityRef, event: VmDiskEvent): Promise<boolean> {
    const key = entityKey(ref);
    const sink = this.sink();
    const previous = this.#chains.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      if (!sink) return false;
      try {
        await sink(ref, event);
        return true;
      } catch (error) {
        this.logger?.warn('could not report on a VM disk', { kind: ref.kind, id: ref.id, event: event.type, error: String(error) });
        return false;
      }
    });
    this.#chains.set(key, next);
    void next.then(() => {
      if (this.#chains.get(key) === next) this.#chains.delete(key);
    });
    return next;
  }
}
