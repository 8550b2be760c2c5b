// Stands for the hypervisor in the demo and most tests: timed progress per work, faults injected on
// demand (EIO, a failing work), and the storage side of a migration reported on the VM's disks.
import type { ErrorTuple } from '../../machines/entity.ts';
import { ErrorCodes, OpstreamError } from '../../src/domain/errors.ts';
import { whenAborted, type Driver, type EntityEventSink, type EntityRef, type WorkReporter, type WorkRequest } from './driver.ts';
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

type Running = { request: WorkRequest; report: WorkReporter; stop: () => void };

const key = entityKey;

/** Stands for the hypervisor: timed progress, and faults injected on demand. */
export class SimulatedDriver implements Driver {
  readonly #timings: Record<string, SimTiming>;
  readonly #defaultTiming: SimTiming;
  readonly #running = new Map<string, Running>();
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

  start(request: WorkRequest, report: WorkReporter, signal: AbortSignal): void {
    const migration = request.kind === EntityKinds.VM && request.work === 'copyMemory';
    // Whatever a VM does next, disks still migrating were left behind by the migration's end.
    const settled = request.kind === EntityKinds.VM && !migration ? this.#disks.settle(key(request), request.work) : Promise.resolve();
    // A settled VM's watch is on a real hypervisor; the simulated one has nothing to watch.
    if (request.work === 'watchRunning' || request.work === 'watchPaused') return;
    const { steps, stepMs } = this.#timings[request.work] ?? this.#defaultTiming;
    const planned = this.#plannedFailures.get(`${key(request)}:${request.work}`);
    this.#plannedFailures.delete(`${key(request)}:${request.work}`);
    let step = 0;
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
      if (this.#running.get(key(request))?.stop === stop) this.#running.delete(key(request));
    };
    // The storage side goes first: a disk's alert is durable before its VM's says as much.
    const disks = (storage: () => Promise<void>) => (migration ? storage() : Promise.resolve());
    const tick = async () => {
      step += 1;
      if (planned && step === Math.ceil(steps / 2)) {
        stop();
        await disks(() => this.#disks.fail(key(request), planned));
        void report({ type: 'WORK_FAILED', error: planned });
        return;
      }
      if (step < steps) {
        const percentage = Math.round((100 * step) / steps);
        await disks(() => this.#disks.progress(key(request), percentage));
        if (stopped) return;
        void report({ type: 'WORK_PROGRESS', percentage });
        timer = setTimeout(() => void tick(), stepMs);
      } else {
        stop();
        await disks(() => this.#disks.done(key(request)));
        void report({ type: 'WORK_DONE' });
      }
    };
    const begin = async () => {
      await settled;
      await disks(() => this.#disks.begin(key(request), migratingDisks(request)));
      if (!stopped) timer = setTimeout(() => void tick(), stepMs);
    };
    void begin();
    this.#running.set(key(request), { request, report, stop });
    whenAborted(signal, stop);
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
