// The client library's front door: everything a program that talks to an agent needs.
export { connect, connectBus } from './client/client.ts';
export { DisconnectedError, RpcError, TimeoutError } from './client/errors.ts';
export { ErrorCodes } from './domain/errors.ts';
export { startManager } from './manager/manager.ts';
export { DEAD_LETTER_BUCKET, listDeadLetters } from './manager/dead-letters.ts';
export { DEFAULT_RETRY_POLICY, retryPolicy } from './domain/retry-policy.ts';
export { isOperationComplete, OPERATION_DESCRIPTIONS } from './domain/operation-info.ts';
export { compileFilter, FILTER_TYPES } from './filters/alert-filter.ts';

export type { ClientOptions, OpstreamClient, RunningTasksScope, TaskRef, VmInfo } from './client/client.ts';
export type { WebSocketOptions } from './client/ws-transport.ts';
export type { DeadLetter } from './manager/dead-letters.ts';
export type { RetryPolicy, RetryPolicyInput } from './domain/retry-policy.ts';
export type { CancelAnswer, JobFilter, JobsApi } from './client/jobs.ts';
export type { JobInfo, StepInfo } from './domain/job.ts';
export type { JobStatus, StepStatus } from './domain/job.ts';
export type { AlertNotification } from './domain/alert.ts';
export type { ErrorCode } from './domain/errors.ts';
export type { OperationDescription, ReceivedOperationInfo } from './domain/operation-info.ts';
export type { TaskInfo } from './domain/task.ts';
export type { ManagedAlert, Manager, ManagerOptions } from './manager/manager.ts';
export type { AlertFilter, FilterType } from './filters/alert-filter.ts';
