// Stands for the hypervisor in the demo and most tests: timed progress per work, faults injected on
// demand (EIO, a failing work), and the storage side of a migration reported on the VM's disks.
import type { ErrorTuple } from '../../machines/entity.ts';
import { ErrorCodes, OpstreamError } from '../../src/domain/errors.ts';
import { whenAborted, type Driver, type EntityEventSink, type EntityRef, type WorkReporter, type WorkRequest, type WorkSignal } from './driver.ts';
import { LastErrorCodes } from '../../src/domain/last-errors.ts';
import { entityKey, EntityKinds } from '../../src/domain/subjects.ts';
import { DiskReports, migratingDisks } from './disk-reports.ts';

/** A work runs in `steps` equal ticks of `stepMs`, reporting progress after each. */
export type SimTiming = { steps: number; stepMs: number };

export const SIM_FAULTS = ['EIO', 'WORK_FAILURE'] as const;
export type SimFault = (typeof SIM_FAULTS)[number];

/** The seed's "paused on EIO" error. */
export const EIO_ERROR: ErrorTuple = [LastErrorCodes.DiskWriteError, 'Error writing to disks'];
const INJECTED_FAILURE: ErrorTuple = [LastErrorCodes.InjectedFailure, 'injected failure'];

const DEMO_TIMINGS: Record<string, SimTiming> = {
  prepare: { steps: 4, stepMs: 300 },
  powerUp: { steps: 4, stepMs: 300 },
  pause: { steps: 1, stepMs: 200 },
  resume: { steps: 1, stepMs: 200 },
  prepareMigration: { steps: 2, stepMs: 300 },
  copyMemory: { steps: 5, stepMs: 400 },
  finishMigration: { steps: 1, stepMs: 200 },
  powerDown: { steps: 2, stepMs: 250 },
  // The undo of a cancelled operation: migrateCancel waits for the destination to let go.
  abortCreate: { steps: 1, stepMs: 200 },
  cancelMigration: { steps: 3, stepMs: 300 },
};

export type SimulatedDriverOptions = {
  /** Per-work timings over the demo's; works not listed use `defaultTiming`. */
  timings?: Record<string, SimTiming>;
  defaultTiming?: SimTiming;
  /** One tick length for every work, keeping each work's steps (tests run in milliseconds). */
  stepMs?: number;
};

const key = entityKey;

/** Stands for the hypervisor: timed progress, and faults injected on demand. */
export class SimulatedDriver implements Driver {
  readonly #timings: Record<string, SimTiming>;
  readonly #defaultTiming: SimTiming;
  readonly #running = new Map<string, SimulatedWork>();
  readonly #plannedFailures = new Map<string, ErrorTuple>();
  #sink: EntityEventSink | undefined;
  /** A migrating VM's disks report the storage side of its memory copy. */
  readonly #disks = new DiskReports(() => this.#sink);

  constructor(options: SimulatedDriverOptions = {}) {
    const timings = { ...DEMO_TIMINGS, ...options.timings };
    const stepMs = options.stepMs;
    this.#timings = stepMs === undefined ? timings : Object.fromEntries(
      Object.entries(timings).map(([work, timing]) => [work, { ...timing, stepMs }]),
    );
    this.#defaultTiming = { steps: 2, stepMs: stepMs ?? 200, ...options.defaultTiming };
  }

  /** Where spontaneous events (an EIO) go; the runtime connects itself here. */
  connect(sink: EntityEventSink): void {
    this.#sink = sink;
  }

  start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
    const operation = key(request);
    const migration = request.kind === EntityKinds.VM && request.work === 'copyMemory';
    // Whatever a VM does next, disks still migrating were left behind by the migration's end.
    const settled = request.kind === EntityKinds.VM && !migration ? this.#disks.settle(operation, request.work) : Promise.resolve();
    // A settled VM's watch is on a real hypervisor; the simulated one has nothing to watch.
    if (request.work === 'watchRunning' || request.work === 'watchPaused') return;
    let planned: ErrorTuple | undefined;
    if (this.#plannedFailures.size > 0) {
      planned = this.#plannedFailures.get(`${operation}:${request.work}`);
      this.#plannedFailures.delete(`${operation}:${request.work}`);
    }
    const work = new SimulatedWork(operation, request, report, { ...(this.#timings[request.work] ?? this.#defaultTiming) }, planned, migration ? this.#disks : undefined, () => {
      if (this.#running.get(operation) === work) this.#running.delete(operation);
    });
    void work.begin(settled);
    this.#running.set(operation, work);
    whenAborted(signal, () => work.stop());
  }

  /** Makes the next run of `work` on this entity fail halfway with `error`. */
  failNext(ref: EntityRef, work: string, error: ErrorTuple = INJECTED_FAILURE): void {
    this.#plannedFailures.set(`${key(ref)}:${work}`, error);
  }

  /**
   * `EIO`: the guest hits a disk error (any running VM). `WORK_FAILURE`: the work in progress
   * fails now. Resolves once the resulting transition is durable.
   */
  async injectFault(ref: EntityRef, fault: SimFault): Promise<void> {
    if (fault === 'EIO') {
      if (!this.#sink) throw new Error('simulated driver is not connected to a runtime');
      await this.#sink(ref, { type: 'IO_ERROR', error: EIO_ERROR });
      return;
    }
    const running = this.#running.get(key(ref));
    if (!running) {
      throw new OpstreamError(ErrorCodes.InvalidTransition, `${ref.kind} ${ref.id} has no work running to fail`);
    }
    running.stop();
    await running.report({ type: 'WORK_FAILED', error: INJECTED_FAILURE });
  }
}

/**
 * One running work: `steps` ticks, progress after each, then its end (or the planned failure
 * half-way). A migration's ticks also report on the VM's disks. An object rather than closures
 * made per work: the write benchmark starts thousands a second, and the driver is not what it measures.
 */
class SimulatedWork {
  #step = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly operation: string,
    readonly request: WorkRequest,
    readonly report: WorkReporter,
    /** Copied: a caller's timings changed later do not change a work already running. */
    private readonly timing: Readonly<SimTiming>,
    private readonly planned: ErrorTuple | undefined,
    /** Set for a migration: its storage side is reported on the VM's disks. */
    private readonly disks: DiskReports | undefined,
    private readonly forget: () => void,
  ) {}

  async begin(settled: Promise<void>): Promise<void> {
    await settled;
    if (this.disks) await this.disks.begin(this.operation, migratingDisks(this.request));
    if (!this.#stopped) this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.forget();
  }

  #schedule(): void {
    this.#timer = setTimeout(() => void this.#tick(), this.timing.stepMs);
  }

  // The storage side goes first: a disk's alert is durable before its VM's says as much.
  async #tick(): Promise<void> {
    const { steps } = this.timing;
    this.#step += 1;
    if (this.planned && this.#step === Math.ceil(steps / 2)) {
      this.stop();
      await this.disks?.fail(this.operation, this.planned);
      void this.report({ type: 'WORK_FAILED', error: this.planned });
      return;
    }
    if (this.#step < steps) {
      const percentage = Math.round((100 * this.#step) / steps);
      await this.disks?.progress(this.operation, percentage);
      if (this.#stopped) return;
      void this.report({ type: 'WORK_PROGRESS', percentage });
      this.#schedule();
    } else {
      this.stop();
      await this.disks?.done(this.operation);
      void this.report({ type: 'WORK_DONE' });
    }
  }
}
