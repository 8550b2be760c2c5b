// An alert as stored in the stream and as a client receives it: the seed's notification with `seq`.
import { z } from 'zod';
import { OperationInfo, ReceivedOperationInfo } from './operation-info.ts';
import { TaskInfo, TaskStatus } from './task.ts';

/** An XState state value: a state name, or nested states for compound ones. */
export type StateValue = string | { [region: string]: StateValue };
export const StateValue: z.ZodType<StateValue> = z.lazy(() =>
  z.union([z.string(), z.record(z.string(), StateValue)]),
);

/** The XState event that caused a transition, as recorded (already redacted). */
export const RecordedEvent = z.looseObject({ type: z.string().min(1) });
export type RecordedEvent = z.infer<typeof RecordedEvent>;

/**
 * One transition of one entity, as stored in the stream. The stream sequence is its position;
 * `revision` counts the entity's alerts, so a gap or a repeat is visible without the stream.
 */
export const Alert = z.object({
  alertName: z.string(),
  operationInfo: OperationInfo,
  status: z.string(),
  state: StateValue,
  event: RecordedEvent,
  task: TaskInfo.optional(),
  taskStatus: TaskStatus.optional(),
  /** A running task that this transition ended by starting another (a destroy during create). */
  cancelledTaskId: z.string().optional(),
  machine: z.object({ id: z.string(), version: z.number().int().min(1) }),
  revision: z.number().int().min(1),
  time: z.string(),
  /** The host that owns the entity after this alert (absent in histories from before the fleet). */
  hostId: z.string().optional(),
});
export type Alert = z.infer<typeof Alert>;

/** The seed's `alert` notification params, with the alert's stream sequence. */
export const AlertNotification = z.object({
  alertName: z.string(),
  operationInfo: ReceivedOperationInfo,
  seq: z.number().int().min(1),
  /** The job the alert's task belongs to (the task's own id for a one-entity job). */
  jobId: z.string().optional(),
  /** The task the alert belongs to, and where it stands after this alert. */
  task: z.object({ id: z.string(), status: TaskStatus }).optional(),
  /** The caller's correlation id, when the call gave one. */
  flowId: z.string().optional(),
});
export type AlertNotification = z.infer<typeof AlertNotification>;

/** The notification for a stored alert: the seed's fields, seq, and the job and task it belongs to. */
export function alertNotification(alert: Alert, seq: number): AlertNotification {
  const notification: AlertNotification = { alertName: alert.alertName, operationInfo: alert.operationInfo, seq };
  if (!alert.task) return notification;
  notification.jobId = alert.task.jobId ?? alert.task.id;
  notification.task = { id: alert.task.id, status: alert.taskStatus ?? 'running' };
  if (alert.task.flowId) notification.flowId = alert.task.flowId;
  return notification;
}
