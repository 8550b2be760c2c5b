// The client library's front door: everything a program that talks to an agent needs.
export { connect, connectBus } from './client/client.ts';
export { DisconnectedError, RpcError, TimeoutError } from './client/errors.ts';
export { ErrorCodes } from './domain/errors.ts';
export { startManager } from './manager/manager.ts';
export { isOperationComplete, OPERATION_DESCRIPTIONS } from './domain/operation-info.ts';
export { compileFilter, FILTER_TYPES } from './filters/alert-filter.ts';

export type { OpstreamClient, TaskRef, VmInfo } from './client/client.ts';
export type { CancelAnswer, JobFilter, JobsApi } from './client/jobs.ts';
export type { JobInfo, StepInfo } from './jobs/job-info.ts';
export type { JobStatus, StepStatus } from '../machines/job.ts';
export type { AlertNotification } from './domain/alert.ts';
export type { ErrorCode } from './domain/errors.ts';
export type { OperationDescription, ReceivedOperationInfo } from './domain/operation-info.ts';
export type { TaskInfo } from './domain/task.ts';
export type { ManagedAlert, Manager, ManagerOptions } from './manager/manager.ts';
export type { AlertFilter, FilterType } from './filters/alert-filter.ts';
