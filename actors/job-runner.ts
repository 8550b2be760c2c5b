// The work of a composite job's states, done by the runtime rather than a hypervisor driver:
// `runJob` starts the job's command steps phase by phase with bounded concurrency and reports
// how each ends; `abortJob` (after a stored CANCEL) waits for calls in flight, cancels the running
// children as their own state declares, and reports each outcome. Both derive every child's task
// id from the job's, so after a crash they find what was already started instead of starting it twice.
import type { ErrorTuple } from '../machines/entity.ts';
import type { EndedStepStatus, JobContext, JobStep, StepCommand } from '../machines/job.ts';
import { ErrorCodes, isOpstreamError } from '../src/domain/errors.ts';
import type { TaskStatus } from '../src/domain/task.ts';
import type { Logger } from '../src/log.ts';
import { whenAborted, type Driver, type WorkReporter, type WorkRequest, type WorkSignal } from './drivers/driver.ts';
import type { TaskRegistry } from './task-registry.ts';
import { LastErrorCodes } from '../src/domain/last-errors.ts';

export type JobHost = {
  jobContext(jobId: string): JobContext | undefined;
  tasks: TaskRegistry;
  /** Runs one step's command as a task with this id, in this job; resolves once it is stored. */
  runCommand(command: StepCommand, identity: { taskId: string; jobId: string; flowId?: string }): Promise<unknown>;
  cancelTask(taskId: string): Promise<unknown>;
  logger: Logger;
};

const STEP_OUTCOME: Record<Exclude<TaskStatus, 'running'>, EndedStepStatus> = {
  finished: 'done',
  failed: 'failed',
  cancelled: 'aborted',
};

/** The task id of a job's step: derived, so a resumed runner recognises what it started. */
export const stepTaskId = (jobId: string, step: Pick<JobStep, 'number'>) => `${jobId}-step-${step.number}`;

export class JobRunner implements Driver {
  /** Commands being started, per job: an abort waits for them before it looks at the steps. */
  readonly #inflight = new Map<string, Set<Promise<unknown>>>();

  constructor(private readonly host: JobHost) {}

  start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
    const jobId = request.id;
    let stopped = false;
    let running = false;
    let again = false;
    const cancelAsked = new Set<string>();
    const tick = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          const retrySoon = () => setTimeout(() => void tick(), 500).unref();
          if (request.work === 'abortJob') await this.#abortTick(jobId, report, cancelAsked, () => stopped, retrySoon);
          else await this.#runTick(jobId, report, () => stopped);
        } while (again && !stopped);
      } catch (error) {
        this.host.logger.warn('job step handling failed', { jobId, error: String(error) });
      } finally {
        running = false;
      }
    };
    const unsubscribe = this.host.tasks.onChange((record) => {
      if (record.task.jobId === jobId && !stopped) void tick();
    });
    // A runner resumed after a restart finds its children in the task index: wait until it is complete.
    void this.host.tasks.ready.then(() => {
      if (!stopped) void tick();
    });
    whenAborted(signal, () => {
      stopped = true;
      unsubscribe();
    });
  }

  /** Reports ended children, then starts pending ones of the lowest unfinished phase. */
  async #runTick(jobId: string, report: WorkReporter, stopped: () => boolean): Promise<void> {
    let context = this.host.jobContext(jobId);
    if (!context || stopped()) return;
    if (await this.#reportEnded(context, report)) context = this.host.jobContext(jobId);
    if (!context || stopped()) return;
    // Recorded as started but never stored (the agent died in between): start it now.
    for (const step of context.steps) {
      if (step.type !== 'command' || step.status !== 'running' || !step.taskId || stopped()) continue;
      if (this.host.tasks.get(step.taskId) || this.#inflight.get(jobId)?.size) continue;
      await this.#startCommand(jobId, step, step.taskId, context, report);
    }
    const commands = context.steps.filter((step) => step.type === 'command');
    const open = commands.filter((step) => step.status === 'pending' || step.status === 'running');
    if (open.length === 0) return;
    const phase = Math.min(...open.map((step) => step.phase));
    const inPhase = open.filter((step) => step.phase === phase);
    const free = context.concurrency - inPhase.filter((step) => step.status === 'running').length;
    for (const step of inPhase.filter((candidate) => candidate.status === 'pending').slice(0, Math.max(0, free))) {
      if (stopped()) return;
      const taskId = stepTaskId(jobId, step);
      await report({ type: 'STEP_STARTED', stepId: step.id, taskId });
      // A cancel stored meanwhile stopped this work: the step never starts (abortJob skips it).
      if (stopped() || this.host.tasks.get(taskId)) continue;
      await this.#startCommand(jobId, step, taskId, context, report);
    }
  }

  async #startCommand(jobId: string, step: JobStep, taskId: string, context: JobContext, report: WorkReporter): Promise<void> {
    const started = this.host
      .runCommand(step.command as StepCommand, { taskId, jobId, flowId: context.task?.flowId })
      .catch((error: unknown) => report({ type: 'STEP_ENDED', stepId: step.id, status: 'failed', error: errorTuple(error) }));
    this.#track(jobId, started);
    await started;
  }

  async #abortTick(jobId: string, report: WorkReporter, cancelAsked: Set<string>, stopped: () => boolean, retrySoon: () => void): Promise<void> {
    await Promise.all([...(this.#inflight.get(jobId) ?? new Set<Promise<unknown>>())]);
    const context = this.host.jobContext(jobId);
    if (!context || stopped()) return;
    for (const step of context.steps) {
      if (step.type !== 'command' || step.status !== 'running' || !step.taskId) continue;
      const record = this.host.tasks.get(step.taskId);
      if (!record) {
        await report({ type: 'STEP_ENDED', stepId: step.id, status: 'skipped' });
      } else if (record.status !== 'running') {
        await report({ type: 'STEP_ENDED', stepId: step.id, status: STEP_OUTCOME[record.status], error: record.lastError });
      } else if (!cancelAsked.has(step.taskId)) {
        cancelAsked.add(step.taskId);
        // Refused or rolled forward: the child runs to its end, and that end is its outcome.
        const taskId = step.taskId;
        await this.host.cancelTask(taskId).catch((error: unknown) => {
          // The stream was away: ask again shortly rather than wait for a change that may not come.
          if (isOpstreamError(error, ErrorCodes.Unavailable) || !isOpstreamError(error)) {
            cancelAsked.delete(taskId);
            retrySoon();
            return;
          }
          this.host.logger.info('a child of an aborting job was not reverted', { jobId, taskId, reason: error.message });
        });
      }
    }
  }

  /** Reports the steps whose task ended; true when there was any. */
  async #reportEnded(context: JobContext, report: WorkReporter): Promise<boolean> {
    let reported = false;
    for (const step of context.steps) {
      if (step.status !== 'running' || !step.taskId) continue;
      const record = this.host.tasks.get(step.taskId);
      if (record && record.status !== 'running') {
        await report({ type: 'STEP_ENDED', stepId: step.id, status: STEP_OUTCOME[record.status], error: record.lastError });
        reported = true;
      }
    }
    return reported;
  }

  #track(jobId: string, started: Promise<unknown>): void {
    let set = this.#inflight.get(jobId);
    if (!set) this.#inflight.set(jobId, (set = new Set()));
    set.add(started);
    void started.finally(() => {
      set.delete(started);
      if (set.size === 0) this.#inflight.delete(jobId);
    });
  }
}

function errorTuple(error: unknown): ErrorTuple {
  return [isOpstreamError(error) ? error.code : LastErrorCodes.Failed, error instanceof Error ? error.message : String(error)];
}
