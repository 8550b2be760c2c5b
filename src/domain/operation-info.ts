// The seed's OperationInfo and its agreed operationDescription words, as the agent produces them and as
// clients read them (keeping values they do not know).
import { z } from 'zod';

/**
 * The agreed `operationDescription` values. Clients translate them, so a value is reused across
 * subsystems rather than invented per case; adding one can break old clients (see README).
 */
export const OPERATION_DESCRIPTIONS = [
  'Creating', 'Configuring', 'Running', 'Pausing', 'Paused', 'Resuming', 'Migration', 'Stopping',
  'Stopped', 'Copying', 'Merging', 'Deleting', 'Ready', 'Connecting', 'Connected', 'Disconnecting',
  'Disconnected', 'Starting', 'Rebalancing', 'Healing', 'Failed',
  // Added later (clients must keep values they do not know): an image or volume that does not exist.
  'Absent',
] as const;
export type OperationDescription = (typeof OPERATION_DESCRIPTIONS)[number];

const Stage = z.tuple([z.number().int().min(1), z.number().int().min(1)]).refine(([n, total]) => n <= total, {
  error: 'stage number must not exceed the total',
});
const Percentage = z.number().int().min(-1).max(100);
const LastError = z.tuple([z.number().int(), z.string()]);

/** OperationInfo as the agent produces it: descriptions come from the agreed enum. */
export const OperationInfo = z.object({
  operationDescription: z.enum(OPERATION_DESCRIPTIONS),
  stageDescription: z.string(),
  stage: Stage,
  percentage: Percentage,
  lastError: LastError,
  extraData: z.record(z.string(), z.unknown()),
});
export type OperationInfo = z.infer<typeof OperationInfo>;

/**
 * OperationInfo as a client reads it: a description it does not know is kept, not rejected,
 * because VDSM's own clients broke when a new value appeared.
 */
export const ReceivedOperationInfo = OperationInfo.extend({ operationDescription: z.string() });
export type ReceivedOperationInfo = z.infer<typeof ReceivedOperationInfo>;

export const NO_ERROR: [number, string] = [0, ''];

/** The seed's completion test: an operation is over when its stage number reaches the total. */
export function isOperationComplete(info: Pick<OperationInfo, 'stage'>): boolean {
  return info.stage[0] === info.stage[1];
}
