// Every task the agent ran within the retention, folded from the alerts its entities append: the
// answer to Task.getInfo and Host.getJobs after a task ended, and what makes a retried call with
// the same jobId idempotent. A one-entity job is derived from its task's alerts (jobId = taskId),
// so the write path stores nothing extra; at start the index is rebuilt from the stream's last
// `retention` of alerts, whatever snapshots recovery used.
import { DeliverPolicy, jetstream, type Consumer } from '@nats-io/jetstream';
import { sealOf } from '../src/nats/alert-record.ts';
import { orderedFrom, ResumingConsume } from '../src/nats/resuming-consume.ts';
import type { HistorySeal } from '../src/security/history-seal.ts';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ErrorTuple } from '../machines/entity.ts';
import { TaskInfo as TaskInfoSchema, TaskStatus as TaskStatusSchema } from '../src/domain/task.ts';
import type { Alert } from '../src/domain/alert.ts';
import { ALERT_ROOT } from '../src/domain/subjects.ts';
import { isExactTaskInfo } from '../src/domain/alert-shape.ts';
import type { TaskInfo, TaskStatus } from '../src/domain/task.ts';

export const DEFAULT_JOB_RETENTION_MS = 60 * 60 * 1000;
/** Ended tasks kept at most (oldest forgotten first), so a busy hour cannot exhaust memory. */
export const MAX_ENDED_TASKS = 100_000;

export type TaskRecord = {
  task: TaskInfo;
  /** The entity the task ran on (a composite job's own task runs on vdsm.Job.<id>). */
  alertName: string;
  status: TaskStatus;
  /** A cancel was recorded and the revert is under way. */
  aborting: boolean;
  percentage: number;
  lastError: ErrorTuple;
  startTime: string;
  endTime: string | null;
  lastSeq: number;
  /** Hidden by Job.delete; kept until retention so a retried call still gets its first answer. */
  deleted: boolean;
};

export type TaskListener = (record: TaskRecord) => void;

export class TaskRegistry {
  readonly #tasks = new Map<string, TaskRecord>();
  readonly #listeners = new Set<TaskListener>();
  #ended = 0;
  #loaded: Promise<void> = Promise.resolve();
  #stopLoading = false;

  constructor(
    readonly retentionMs: number,
    private readonly now: () => Date,
  ) {}

  get(taskId: string): TaskRecord | undefined {
    const record = this.#tasks.get(taskId);
    if (record && this.#expired(record)) {
      this.#forget(taskId);
      return undefined;
    }
    return record;
  }

  list(): TaskRecord[] {
    return [...this.#tasks.keys()].map((id) => this.get(id)).filter((record): record is TaskRecord => record !== undefined);
  }

  /** Calls `listener` after every change of any task; returns the unsubscribe. */
  onChange(listener: TaskListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  markDeleted(taskId: string): void {
    const record = this.#tasks.get(taskId);
    if (record) record.deleted = true;
  }

  /** A task an entity is running after recovery; the load refines its start from older alerts. */
  seedRunning(task: TaskInfo, alertName: string, lastSeq: number, now: Date): void {
    if (this.#tasks.has(task.id)) return;
    this.#tasks.set(task.id, {
      task, alertName, status: 'running', aborting: false, percentage: 0, lastError: [0, ''],
      startTime: now.toISOString(), endTime: null, lastSeq: lastSeq - 1, deleted: false,
    });
  }

  /** Folds one alert in; alerts of a task arrive in stream order. */
  observe({ seq, alert }: { seq: number; alert: TaskFacts }): void {
    if (alert.cancelledTaskId) {
      // A destroy during a create ended that task: it was cancelled by the new one.
      const replaced = this.#tasks.get(alert.cancelledTaskId);
      if (replaced && replaced.status === 'running') {
        this.#update(replaced, { status: 'cancelled', aborting: false, endTime: alert.time, lastSeq: seq, lastError: [0, `replaced by task ${alert.task?.id}`] });
      }
    }
    const { task, taskStatus } = alert;
    if (!task || !taskStatus) return;
    let record = this.#tasks.get(task.id);
    if (record && seq <= record.lastSeq) {
      // The background load reaches a task's older alerts after live ones: only its start is news.
      if (alert.time < record.startTime) record.startTime = alert.time;
      if (alert.event.type === 'CANCEL' && record.status === 'running') record.aborting = true;
      return;
    }
    if (!record) {
      record = {
        task,
        alertName: alert.alertName,
        status: 'running',
        aborting: false,
        percentage: 0,
        lastError: [0, ''],
        startTime: alert.time,
        endTime: null,
        lastSeq: seq,
        deleted: false,
      };
      this.#tasks.set(task.id, record);
    }
    const running = taskStatus === 'running';
    this.#update(record, {
      status: taskStatus,
      aborting: running && (record.aborting || alert.event.type === 'CANCEL'),
      percentage: running ? Math.max(0, alert.operationInfo.percentage) : taskStatus === 'finished' ? 100 : record.percentage,
      lastError: alert.operationInfo.lastError,
      endTime: running ? null : alert.time,
      lastSeq: seq,
    });
  }

  /** Resolves once the background load is done: lookups of ended tasks are complete from then on. */
  get ready(): Promise<void> {
    return this.#loaded;
  }

  /**
   * Rebuilds the index from the alerts of the last `retentionMs`, in the background: an agent is
   * ready (entities recovered) without waiting for it; what needs ended tasks awaits `ready`.
   */
  startLoading(
    nc: NatsConnection,
    stream: string,
    logger: { info(message: string, fields: Record<string, unknown>): void; warn(message: string, fields: Record<string, unknown>): void },
    seal?: HistorySeal,
  ): void {
    const started = performance.now();
    this.#loaded = this.#load(nc, stream, seal).then(
      (read) => logger.info('task index rebuilt', { alertsRead: read, tasks: this.#tasks.size, ms: Math.round(performance.now() - started) }),
      (error: unknown) => {
        // Stopped while loading (a shutdown): nothing to report.
        if (!this.#stopLoading) logger.warn('task index not rebuilt; jobs ended before this start are not known', { error: String(error) });
      },
    );
  }

  stopLoading(): void {
    this.#stopLoading = true;
  }

  async #load(nc: NatsConnection, stream: string, seal: HistorySeal | undefined): Promise<number> {
    const js = jetstream(nc);
    const since = new Date(this.now().getTime() - this.retentionMs);
    const filter = `${ALERT_ROOT}.>`;
    // Opened again after a lost pull, it goes on after the last message seen.
    const afterSeen = orderedFrom(js, stream, filter, 1);
    const open = (after: number | undefined): Promise<Consumer> =>
      after === undefined
        ? js.consumers.get(stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.toISOString() })
        : afterSeen(after);
    const consumer = await open(undefined);
    if ((await consumer.info()).num_pending === 0) return 0;
    const messages = await ResumingConsume.start(open, { max_messages: 10_000 }, { first: consumer });
    let read = 0;
    try {
      for await (const message of messages) {
        read += 1;
        // Only the task fields matter here: picked without validating the whole alert, so this
        // pass stays cheap beside recovery's. A record it cannot read is recovery's business; one
        // an agent did not seal is not history, and must not make a jobId look taken.
        const sealed = !seal || seal.verify(message.subject, message.data, sealOf(message), message.seq);
        const facts = sealed ? taskFacts(safeJson(message.data)) : undefined;
        if (facts) this.observe({ seq: message.seq, alert: facts });
        if (message.info.pending === 0 || this.#stopLoading) break;
      }
    } finally {
      await messages.close();
    }
    return read;
  }

  /** Forgets ended tasks older than the retention. */
  sweep(): void {
    for (const [id, record] of this.#tasks) if (this.#expired(record)) this.#forget(id);
  }

  #forget(taskId: string): void {
    if (this.#tasks.get(taskId)?.status !== 'running') this.#ended = Math.max(0, this.#ended - 1);
    this.#tasks.delete(taskId);
  }

  #expired(record: TaskRecord): boolean {
    return record.endTime !== null && this.now().getTime() - Date.parse(record.endTime) > this.retentionMs;
  }

  #update(record: TaskRecord, change: Partial<TaskRecord>): void {
    const wasRunning = record.status === 'running';
    Object.assign(record, change);
    for (const listener of this.#listeners) listener(record);
    if (!wasRunning || record.status === 'running') return;
    // Ended long ago (read back at start): nothing will ask for it.
    if (this.#expired(record)) {
      this.#tasks.delete(record.task.id);
      return;
    }
    this.#ended += 1;
    if (this.#ended > MAX_ENDED_TASKS) this.#evictOldestEnded();
  }

  /** Map order is insertion order, which is start order: the first ended ones are the oldest. */
  #evictOldestEnded(): void {
    for (const [id, record] of this.#tasks) {
      if (this.#ended <= MAX_ENDED_TASKS * 0.9) return;
      if (record.status === 'running') continue;
      this.#tasks.delete(id);
      this.#ended -= 1;
    }
  }
}

/** What the registry reads of an alert. */
export type TaskFacts = Pick<Alert, 'alertName' | 'task' | 'taskStatus' | 'cancelledTaskId' | 'time'> & {
  event: { type: string };
  operationInfo: { percentage: number; lastError: ErrorTuple };
};

function taskFacts(value: unknown): TaskFacts | undefined {
  const alert = value as Partial<Record<keyof TaskFacts, unknown>> | undefined;
  if (!alert || typeof alert.alertName !== 'string' || typeof alert.time !== 'string') return undefined;
  // The common case skips zod, as recovery's judge does (alert-shape.ts); the schema has the last word.
  const task = isExactTaskInfo(alert.task) ? { success: true as const, data: alert.task } : TaskInfoSchema.safeParse(alert.task);
  const status = TaskStatusSchema.safeParse(alert.taskStatus);
  const info = alert.operationInfo as { percentage?: unknown; lastError?: unknown } | undefined;
  const event = alert.event as { type?: unknown } | undefined;
  if (!task.success || !status.success || typeof info?.percentage !== 'number' || !Array.isArray(info.lastError) || typeof event?.type !== 'string') {
    return undefined;
  }
  return {
    alertName: alert.alertName,
    time: alert.time,
    task: task.data,
    taskStatus: status.data,
    cancelledTaskId: typeof alert.cancelledTaskId === 'string' ? alert.cancelledTaskId : undefined,
    event: { type: event.type },
    operationInfo: { percentage: info.percentage, lastError: info.lastError as ErrorTuple },
  };
}

// One decoder for every record: a decoder made per record was a twelfth of rebuilding the index.
const utf8 = new TextDecoder();

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(data));
  } catch {
    return undefined;
  }
}
