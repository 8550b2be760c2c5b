// The contract between the runtime and whatever does the work an operation stands for: a driver
// starts a state's work, reports progress and its end as events, and stops when its signal aborts.
import type { DriverEvent } from '../../machines/entity.ts';
import type { EntityRef } from '../../src/domain/subjects.ts';

export type { EntityRef };

export type WorkRequest = EntityRef & {
  /** The work a state declares in its meta (`prepare`, `powerUp`, `copyMemory`, ...). */
  work: string;
  /** The entity's context when the work starts (redacted: drivers never see stored secrets). */
  context: Readonly<Record<string, unknown>>;
  /** True when an agent restarted and resumes work it had begun before. */
  resumed: boolean;
};

/**
 * Reports one driver event (a job runner reports its steps' events the same way); resolves once
 * the resulting transition is durable (or dropped).
 */
export type WorkReporter = (event: DriverEvent | EntityEvent) => Promise<void>;

/**
 * What tells a driver to stop a work: the part of an AbortSignal drivers use, so an
 * AbortController's signal is one (tests pass those). The runtime passes a WorkStop
 * (actors/work-stop.ts), which is not an EventTarget: a real AbortSignal for every work, its
 * listener and its abort were about 7% of the write path's CPU and a fifth of a 100,000-entity restart.
 * A driver that hands the stop to an API taking an AbortSignal makes one: `whenAborted(signal, () => controller.abort())`.
 */
export interface WorkSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * Does the work an operation stands for. Timers and I/O live here, never in machines: the
 * driver's progress and its end come back as events, which the runtime persists in turn.
 * The runtime aborts `signal` when the work's state is left (a cancel, a stall, a stop): the
 * driver then stops its timers, processes or QMP jobs and reports nothing more. A work that has
 * reported its end (WORK_DONE or WORK_FAILED) is over: its signal is not aborted after that, so
 * the driver releases what the work held when it reports the end, and never reports an end while
 * something of the work still runs.
 */
export interface Driver {
  start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void;
  /** Where the driver sends events no work caused (faults); the runtime connects itself. */
  connect?(sink: EntityEventSink): void;
}

/** Runs `stop` once `signal` aborts — at once when it already has. */
export function whenAborted(signal: WorkSignal, stop: () => void): void {
  if (signal.aborted) stop();
  else signal.addEventListener('abort', stop, { once: true });
}

/** Events an entity receives without a call: faults the hypervisor notices on its own. */
export type EntityEvent = { type: string } & Record<string, unknown>;
export type EntityEventSink = (target: EntityRef, event: EntityEvent) => Promise<unknown>;

/**
 * A driver that can be told to fail on purpose (the simulator): `Sim.injectFault` reaches it
 * through this, so the API never names a concrete driver. Each driver accepts its own faults.
 */
export interface FaultInjector {
  injectFault(target: EntityRef, fault: string): Promise<void>;
}

/** One brick's answer to a heal-info question. */
export type BrickHeal = { brick: string; status: string; entries: number };

/** Questions to a volume manager that are not operations: answered at once, nothing is stored. */
export interface VolumeQueries {
  healInfo(volumeName: string): BrickHeal[];
}
