// An entity's recorded history, as the replay debugger works on it: loaded from the stream, or
// from a file exported on another machine so a bug replays without the cluster.
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { isQuarantined, type AlertLog, type HistoryRecord, type QuarantinedRecord, type StoredAlert } from '../../actors/alert-log.ts';
import { Alert } from '../domain/alert.ts';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import { parseAlertSubject } from '../domain/subjects.ts';

export const HistoryFile = z.object({
  format: z.literal('opstream-history/1'),
  alertName: z.string(),
  exportedAt: z.string(),
  alerts: z.array(z.object({ seq: z.number().int().min(1), alert: Alert })),
  /** Records of the subject that are not history (unsealed, unparseable): shown, never replayed. */
  quarantined: z.array(z.object({ seq: z.number().int().min(1), subject: z.string(), reason: z.string() })).optional(),
});
export type HistoryFile = z.infer<typeof HistoryFile>;

export async function loadHistory(log: AlertLog, alertName: string, now = new Date()): Promise<HistoryFile> {
  if (!parseAlertSubject(alertName)) {
    throw new OpstreamError(ErrorCodes.InvalidParams, `${JSON.stringify(alertName)} is not an alert name (like vdsm.VM.best_vm)`);
  }
  const alerts: StoredAlert[] = [];
  const quarantined: QuarantinedRecord[] = [];
  for await (const record of log.read(alertName)) {
    if (isQuarantined(record)) quarantined.push(record);
    else alerts.push(record);
  }
  if (alerts.length + quarantined.length === 0) throw new OpstreamError(ErrorCodes.NoSuchEntity, `${alertName} has no history in stream ${log.stream}`);
  return { format: 'opstream-history/1', alertName, exportedAt: now.toISOString(), alerts, ...(quarantined.length ? { quarantined } : {}) };
}

/** Every record of the history, alerts and quarantined ones, in stream order. */
export function historyRecords(history: HistoryFile): HistoryRecord[] {
  return [...history.alerts, ...(history.quarantined ?? [])].sort((a, b) => a.seq - b.seq);
}

export async function exportHistory(path: string, history: HistoryFile): Promise<void> {
  await writeFile(path, `${JSON.stringify(history, null, 2)}\n`);
}

export async function importHistory(path: string): Promise<HistoryFile> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new OpstreamError(ErrorCodes.InvalidParams, `cannot read history file ${path}: ${(error as Error).message}`);
  }
  const parsed = HistoryFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new OpstreamError(ErrorCodes.InvalidParams, `${path} is not an opstream history file: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return parsed.data;
}
