// Reading the agent's `alert` notifications as DESIGN asks of a client: a value this client does
// not know (a new operationDescription, a new field, a percentage scaled differently) is kept,
// not dropped. Only a notification without the shape every version shares is refused — and
// reported, never dropped silently.
import { z } from 'zod';
import type { AlertNotification } from '../domain/alert.ts';

/** The seed's fields with their JSON types and nothing more; unknown fields are kept. */
const TolerantOperationInfo = z.looseObject({
  operationDescription: z.string(),
  stageDescription: z.string().default(''),
  stage: z.tuple([z.number(), z.number()]),
  percentage: z.number(),
  lastError: z.tuple([z.number(), z.string()]),
  extraData: z.record(z.string(), z.unknown()).default({}),
});

const TolerantNotification = z.looseObject({
  alertName: z.string().min(1),
  operationInfo: TolerantOperationInfo,
  seq: z.number().int().min(1),
});

export type NotificationReading = { ok: true; alert: AlertNotification } | { ok: false; reason: string };

/** Reads one notification's params: the alert, or why it cannot be one. */
export function readNotification(params: unknown): NotificationReading {
  const parsed = TolerantNotification.safeParse(params);
  if (parsed.success) return { ok: true, alert: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, reason: `${issue?.path.join('.') || 'params'}: ${issue?.message ?? 'invalid'}` };
}
