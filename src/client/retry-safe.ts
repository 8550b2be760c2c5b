// Which calls the client may send again after 105 Unavailable (a stream leader election, an agent
// still rebuilding): reads, and writes that carry a jobId, which the agent runs at most once.
import { randomUUID } from 'node:crypto';

/**
 * Methods that only look: sending one twice changes nothing. Host.subscribe and Host.unsubscribe
 * are reads too, but belong to a connection; the subscription table renews them on its own.
 */
export const READ_METHODS: ReadonlySet<string> = new Set([
  'VM.getInfo',
  'Image.getInfo',
  'StorageConnection.getInfo',
  'GlusterVolume.getInfo',
  'GlusterVolume.healInfo',
  'Host.getRunningTasks',
  'Host.list',
  'Host.getRunningOperations',
  'Host.getJobs',
  'Job.getInfo',
  'Task.getInfo',
  'Machine.list',
  'Machine.describe',
  'History.list',
  'History.get',
  'History.verify',
]);

/**
 * Writes that run as jobs: they take a caller `jobId`, and a repeat with the same jobId returns
 * the first answer and runs nothing (README "Jobs and cancellation"). Job.cancel, Task.cancel,
 * Job.delete and Sim.* take none, so they are never repeated.
 */
export const JOB_METHODS: ReadonlySet<string> = new Set([
  'VM.create',
  'VM.pause',
  'VM.cont',
  'VM.destroy',
  'VM.migrate',
  'Image.create',
  'Image.copy',
  'Image.merge',
  'Image.delete',
  'StorageConnection.connect',
  'StorageConnection.disconnect',
  'GlusterVolume.create',
  'GlusterVolume.start',
  'GlusterVolume.stop',
  'GlusterVolume.rebalanceStart',
  'GlusterVolume.rebalanceStop',
  'Host.prepareForMaintenance',
]);

/**
 * The params to send, and whether the call may be sent again after Unavailable. A job write
 * without a jobId gets a fresh one here (unless `idempotentWrites` is off), so every attempt of
 * the call is the same job: the agent runs it once whichever attempt reaches it.
 */
export function prepareCall(
  method: string,
  params: Record<string, unknown>,
  idempotentWrites: boolean,
): { params: Record<string, unknown>; retrySafe: boolean } {
  if (READ_METHODS.has(method)) return { params, retrySafe: true };
  if (!JOB_METHODS.has(method)) return { params, retrySafe: false };
  if (params['jobId'] !== undefined) return { params, retrySafe: true };
  if (!idempotentWrites) return { params, retrySafe: false };
  return { params: { ...params, jobId: randomUUID() }, retrySafe: true };
}
