// A hand-written fast path in front of the Alert schema: replay judges a million records, and zod
// cost as much per record as the JSON parse. It accepts only what the schema accepts *unchanged*
// (no key the schema would strip, no value it would coerce); anything else — an unknown key
// included — goes to the schema, which gives the verdict and the reason. So it is never weaker.
import { OPERATION_DESCRIPTIONS } from './operation-info.ts';
import type { Alert } from './alert.ts';
import { TASK_STATUSES, type TaskInfo } from './task.ts';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const isInt = (value: unknown): value is number => Number.isSafeInteger(value);
const isString = (value: unknown): value is string => typeof value === 'string';
const isName = (value: unknown): boolean => isString(value) && value.length > 0;
const DESCRIPTIONS = new Set<unknown>(OPERATION_DESCRIPTIONS);
const STATUSES = new Set<unknown>(TASK_STATUSES);

/** `object` has only keys of `allowed` and all of `required`. */
function hasKeys(object: Json, required: readonly string[], optional: readonly string[] = []): boolean {
  let present = 0;
  for (const key of required) {
    if (!Object.hasOwn(object, key)) return false;
    present += 1;
  }
  for (const key of optional) if (Object.hasOwn(object, key)) present += 1;
  return Object.keys(object).length === present;
}

function isStateValue(value: unknown, depth = 0): boolean {
  if (isString(value)) return true;
  if (!isObject(value) || depth > 32) return false;
  for (const key of Object.keys(value)) if (!isStateValue(value[key], depth + 1)) return false;
  return true;
}

function isOperationInfo(value: unknown): boolean {
  if (!isObject(value) || !hasKeys(value, ['operationDescription', 'stageDescription', 'stage', 'percentage', 'lastError', 'extraData'])) return false;
  const { stage, percentage, lastError } = value;
  return (
    DESCRIPTIONS.has(value['operationDescription']) &&
    isString(value['stageDescription']) &&
    Array.isArray(stage) && stage.length === 2 && isInt(stage[0]) && isInt(stage[1]) && stage[0] >= 1 && stage[1] >= 1 && stage[0] <= stage[1] &&
    isInt(percentage) && percentage >= -1 && percentage <= 100 &&
    Array.isArray(lastError) && lastError.length === 2 && isInt(lastError[0]) && isString(lastError[1]) &&
    isObject(value['extraData'])
  );
}

/** Whether `TaskInfo.parse(value)` would succeed and return `value` as it is. */
export function isExactTaskInfo(value: unknown): value is TaskInfo {
  if (!isObject(value) || !hasKeys(value, ['id', 'methodName', 'kwargs'], ['jobId', 'flowId'])) return false;
  return (
    isName(value['id']) &&
    isName(value['methodName']) &&
    isObject(value['kwargs']) &&
    (!Object.hasOwn(value, 'jobId') || isName(value['jobId'])) &&
    (!Object.hasOwn(value, 'flowId') || isName(value['flowId']))
  );
}

/** Whether `Alert.parse(json)` would succeed and return `json` as it is. */
export function isExactAlert(json: unknown): json is Alert {
  if (!isObject(json)) return false;
  if (!hasKeys(json, ['alertName', 'operationInfo', 'status', 'state', 'event', 'machine', 'revision', 'time'], ['task', 'taskStatus', 'cancelledTaskId', 'hostId'])) {
    return false;
  }
  const { event, machine, revision } = json;
  return (
    isString(json['alertName']) &&
    isString(json['status']) &&
    isString(json['time']) &&
    isInt(revision) && revision >= 1 &&
    isObject(machine) && hasKeys(machine, ['id', 'version']) && isString(machine['id']) && isInt(machine['version']) && machine['version'] >= 1 &&
    isObject(event) && isName(event['type']) &&
    isStateValue(json['state']) &&
    isOperationInfo(json['operationInfo']) &&
    (!Object.hasOwn(json, 'task') || isExactTaskInfo(json['task'])) &&
    (!Object.hasOwn(json, 'taskStatus') || STATUSES.has(json['taskStatus'])) &&
    (!Object.hasOwn(json, 'cancelledTaskId') || isString(json['cancelledTaskId'])) &&
    (!Object.hasOwn(json, 'hostId') || isString(json['hostId']))
  );
}
