// `opstream schema`: the published contract as JSON Schema — OperationInfo with its agreed
// operationDescription enum, the alert notification, TaskInfo, JobInfo — for clients in any language.
import { z } from 'zod';
import { AlertNotification } from '../domain/alert.ts';
import { OperationInfo } from '../domain/operation-info.ts';
import { TaskInfo } from '../domain/task.ts';
import { JobInfo } from '../jobs/job-info.ts';

export function publishedSchemas(): Record<string, unknown> {
  return {
    $comment: 'opstream wire contract; clients must keep operationDescription values they do not know',
    OperationInfo: z.toJSONSchema(OperationInfo),
    AlertNotification: z.toJSONSchema(AlertNotification),
    TaskInfo: z.toJSONSchema(TaskInfo),
    JobInfo: z.toJSONSchema(JobInfo),
  };
}
