// A composite job (`vdsm.Job.<jobId>`): one API action whose internal commands are child steps.
// The machine only records what happened — steps started, steps ended, a cancel — and derives the
// job's status from its step tree; the runtime's job runner decides when to start what. Pure.
import { produce, type Draft } from 'immer';
import { and, assign, setup } from 'xstate';
import type { TaskInfo } from '../src/domain/task.ts';
import type { EntityContext, ErrorTuple, StateMeta } from './entity.ts';
import { ALREADY_CANCELLING, beginTask, cancelledError, endTask } from './entity.ts';

export const JOB_MACHINE_VERSION = 1;

import { JOB_STATUSES, STEP_STATUSES, type JobStatus, type StepStatus } from '../src/domain/job.ts';
import { LastErrorCodes } from '../src/domain/last-errors.ts';

export { JOB_STATUSES, STEP_STATUSES, type JobStatus, type StepStatus };
export type EndedStepStatus = Exclude<StepStatus, 'pending' | 'running'>;

/** An internal command a step runs: an entity method with its params. */
export type StepCommand = { method: string; alertName: string; params: Record<string, unknown> };

export type JobStep = {
  id: string;
  parentStepId: string | null;
  number: number;
  type: 'validating' | 'executing' | 'command';
  description: string;
  status: StepStatus;
  progress: number;
  /** Commands of a lower phase all end before a higher phase starts. */
  phase: number;
  command: StepCommand | null;
  /** The entity task the step drives, once started. */
  taskId: string | null;
  error: ErrorTuple;
};

export type JobContext = EntityContext & {
  jobId: string;
  description: string;
  /** How many commands of one phase may run at once. */
  concurrency: number;
  steps: JobStep[];
  stage: [number, number];
};

export type PlannedCommand = StepCommand & { description: string; phase: number };

export type JobEvent =
  | { type: 'START'; task: TaskInfo; description: string; concurrency: number; commands: PlannedCommand[] }
  | { type: 'STEP_STARTED'; stepId: string; taskId: string }
  | { type: 'STEP_ENDED'; stepId: string; status: EndedStepStatus; error?: ErrorTuple }
  | { type: 'CANCEL' }
  | { type: 'DELETE' };

const meta = (value: StateMeta): StateMeta => value;
const ended = (step: JobStep) => step.status !== 'pending' && step.status !== 'running';
const commandsOf = (steps: readonly JobStep[]) => steps.filter((step) => step.type === 'command');
const EXECUTING = 'executing';

/** Keeps the executing step, the progress and the stage in line with the command steps. */
function settle(draft: Draft<JobContext>): void {
  const commands = commandsOf(draft.steps as JobStep[]);
  const done = commands.filter(ended).length;
  const executing = draft.steps.find((step) => step.id === EXECUTING);
  const total = commands.length + 1;
  draft.percentage = commands.length ? Math.round((100 * done) / commands.length) : 100;
  draft.stage = [Math.min(done + 1, total), total];
  if (!executing) return;
  executing.progress = draft.percentage;
  if (done < commands.length) executing.status = commands.some((step) => step.status !== 'pending') ? 'running' : 'pending';
  else if (commands.some((step) => step.status === 'failed')) executing.status = 'failed';
  else if (commands.some((step) => step.status === 'aborted' || step.status === 'skipped')) executing.status = 'aborted';
  else executing.status = 'done';
}

function plannedSteps(commands: readonly PlannedCommand[]): JobStep[] {
  const step = (partial: Partial<JobStep> & Pick<JobStep, 'id' | 'number' | 'type' | 'description'>): JobStep => ({
    parentStepId: null, status: 'pending', progress: 0, phase: 0, command: null, taskId: null, error: [0, ''], ...partial,
  });
  return [
    step({ id: 'validating', number: 1, type: 'validating', description: 'validating', status: 'done', progress: 100 }),
    step({ id: EXECUTING, number: 2, type: 'executing', description: 'executing' }),
    ...commands.map(({ description, phase, ...command }, index) =>
      step({ id: `step-${index + 1}`, parentStepId: EXECUTING, number: index + 3, type: 'command', description, phase, command }),
    ),
  ];
}

export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as { id: string },
  },
  actions: {
    start: assign(({ context, event }) =>
      event.type !== 'START' ? {} : produce(context, (draft) => {
        Object.assign(draft, beginTask(event.task));
        draft.description = event.description;
        draft.concurrency = event.concurrency;
        draft.steps = plannedSteps(event.commands);
        settle(draft);
      }),
    ),
    stepStarted: assign(({ context, event }) =>
      event.type !== 'STEP_STARTED' ? {} : produce(context, (draft) => {
        const step = draft.steps.find((candidate) => candidate.id === event.stepId);
        if (!step || step.status !== 'pending') return;
        step.status = 'running';
        step.taskId = event.taskId;
        settle(draft);
      }),
    ),
    stepEnded: assign(({ context, event }) =>
      event.type !== 'STEP_ENDED' ? {} : produce(context, (draft) => {
        const step = draft.steps.find((candidate) => candidate.id === event.stepId);
        if (!step || ended(step)) return;
        step.status = event.status;
        step.progress = event.status === 'done' ? 100 : step.progress;
        step.error = event.error ?? [0, ''];
        settle(draft);
      }),
    ),
    // Children not started yet never start: they are skipped in the same transition as the cancel.
    skipPending: assign(({ context }) =>
      produce(context, (draft) => {
        for (const step of draft.steps) if (step.type === 'command' && step.status === 'pending') step.status = 'skipped';
        settle(draft);
      }),
    ),
    finish: assign(({ context }, params: { outcome: 'done' | 'failed' | 'aborted' }) => {
      const failed = commandsOf(context.steps).find((step) => step.status === 'failed');
      const error: ErrorTuple =
        params.outcome === 'aborted'
          ? cancelledError('steps not started were skipped, running ones cancelled as their state declares, finished ones kept')
          : params.outcome === 'failed'
            ? [failed?.error[0] || LastErrorCodes.Failed, `step ${failed?.number} (${failed?.description}) failed: ${failed?.error[1]}`]
            : [0, ''];
      return { ...endTask(error), stage: [context.stage[1], context.stage[1]] as [number, number] };
    }),
  },
  guards: {
    allEnded: ({ context }) => commandsOf(context.steps).every(ended),
    anyFailed: ({ context }) => commandsOf(context.steps).some((step) => step.status === 'failed'),
  },
}).createMachine({
  id: 'job',
  context: ({ input }) => ({
    jobId: input.id,
    description: '',
    concurrency: 1,
    steps: [],
    stage: [1, 1],
    task: null,
    percentage: -1,
    lastError: [0, ''],
  }),
  initial: 'pending',
  states: {
    pending: {
      meta: meta({ status: 'pending', operation: { operationDescription: 'Ready', stageDescription: 'pending', stage: [1, 1], extraData: {} } }),
      on: { START: { target: 'running', actions: 'start' } },
    },
    running: {
      meta: meta({
        status: 'running',
        operation: { operationDescription: 'Running', stageDescription: 'executing', stage: [1, 2], extraData: {} },
        work: 'runJob',
        // The runner finds its children again by their task ids, which derive from the job's.
        onResume: 'continue',
        cancel: {
          policy: 'revert',
          reason: 'steps not started never start; running ones are cancelled as their own state declares; finished ones stay',
        },
      }),
      always: [
        { guard: and(['allEnded', 'anyFailed']), target: 'failed', actions: { type: 'finish', params: { outcome: 'failed' } } },
        { guard: 'allEnded', target: 'done', actions: { type: 'finish', params: { outcome: 'done' } } },
      ],
      on: {
        STEP_STARTED: { actions: 'stepStarted' },
        STEP_ENDED: { actions: 'stepEnded' },
        CANCEL: { target: 'aborting', actions: 'skipPending' },
      },
    },
    aborting: {
      meta: meta({
        status: 'aborting',
        operation: { operationDescription: 'Stopping', stageDescription: 'aborting', stage: [1, 2], extraData: {} },
        work: 'abortJob',
        onResume: 'continue',
        cancel: ALREADY_CANCELLING,
      }),
      always: { guard: 'allEnded', target: 'aborted', actions: { type: 'finish', params: { outcome: 'aborted' } } },
      on: {
        STEP_STARTED: { actions: 'stepStarted' },
        STEP_ENDED: { actions: 'stepEnded' },
      },
    },
    done: {
      meta: meta({ status: 'done', operation: { operationDescription: 'Ready', stageDescription: 'done', stage: [1, 1], extraData: {} } }),
      on: { DELETE: 'deleted' },
    },
    failed: {
      meta: meta({ status: 'failed', operation: { operationDescription: 'Failed', stageDescription: 'failed', stage: [1, 1], extraData: {} } }),
      on: { DELETE: 'deleted' },
    },
    aborted: {
      meta: meta({ status: 'aborted', operation: { operationDescription: 'Stopped', stageDescription: 'aborted', stage: [1, 1], extraData: {} } }),
      on: { DELETE: 'deleted' },
    },
    deleted: {
      meta: meta({ status: 'deleted', operation: { operationDescription: 'Deleting', stageDescription: 'deleted', stage: [1, 1], extraData: {} } }),
    },
  },
});
