// `opstream replay <alertName>`: an entity's history as a table, time travel with --to, a check
// of today's machines with --verify, JSON for tools, export/import for replay elsewhere.
import { AlertLog } from '../../actors/alert-log.ts';
import type { StateValue } from '../domain/alert.ts';
import { DEFAULT_STREAM } from '../nats/alert-stream.ts';
import { definitionFor, steps, verify, type Step, type Verification } from '../replay/debugger.ts';
import { exportHistory, importHistory, loadHistory, type HistoryFile } from '../replay/history.ts';
import { formatOperationInfo } from './format.ts';
import { localHistorySeal, withNats } from './nats-access.ts';

export type ReplayOptions = {
  to?: number;
  verify: boolean;
  json: boolean;
  export?: string;
  import?: string;
  natsUrl?: string;
  stream: string;
};

/** Returns the exit status: 1 when --verify finds a divergence. */
export async function replay(alertName: string | undefined, options: ReplayOptions): Promise<number> {
  const history = await obtainHistory(alertName, options);
  if (options.export) {
    await exportHistory(options.export, history);
    console.error(`exported ${history.alerts.length} alerts of ${history.alertName} to ${options.export}`);
  }
  const shown = steps(history, options.to);
  const verification = options.verify ? verify(history, definitionFor(history.alertName), options.to) : undefined;
  if (options.json) {
    console.log(JSON.stringify({ alertName: history.alertName, steps: shown, verification }, null, 2));
  } else {
    printTable(history.alertName, shown, verification?.ok === false ? verification.divergence.seq : undefined);
    for (const { seq, reason } of history.quarantined ?? []) console.log(`quarantined: sequence ${seq} is not history (${reason})`);
    if (verification) console.log(describeVerification(verification));
  }
  return verification?.ok === false ? 1 : 0;
}

async function obtainHistory(alertName: string | undefined, options: ReplayOptions): Promise<HistoryFile> {
  if (options.import) {
    const history = await importHistory(options.import);
    if (alertName && alertName !== history.alertName) {
      throw new Error(`${options.import} holds ${history.alertName}, not ${alertName}`);
    }
    return history;
  }
  if (!alertName) throw new Error('name an entity (like vdsm.VM.best_vm) or give --import FILE');
  return withNats(options.natsUrl, async (nc) => loadHistory(await AlertLog.open(nc, options.stream ?? DEFAULT_STREAM, localHistorySeal()), alertName));
}

/** `Up`, `MigrationSource.copyingMemory`, or ∅ before the first alert. */
function show(value: StateValue | null | undefined): string {
  if (value === null || value === undefined) return '∅';
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([region, inner]) => `${region}.${show(inner)}`)
    .join(', ');
}

function printTable(alertName: string, rows: Step[], divergentSeq: number | undefined): void {
  console.log(`${alertName}: ${rows.length} alerts\n`);
  // Histories from before the fleet name no host: the column shows only where one does.
  const hosts = rows.some((step) => step.hostId !== undefined);
  const header = ['seq', 'time', ...(hosts ? ['host'] : []), 'event', 'from → to', 'operationInfo'];
  const lines = rows.map((step) => [
    String(step.seq),
    step.time.replace('T', ' ').replace('Z', ''),
    ...(hosts ? [step.hostId ?? '-'] : []),
    step.event.type + (step.taskId && step.event.type !== 'WORK_PROGRESS' ? ` (${step.taskId.slice(0, 8)})` : ''),
    `${show(step.from)} → ${show(step.to)}`,
    formatOperationInfo(step.operationInfo) + (step.seq === divergentSeq ? '   ◀ diverges here' : ''),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)));
  const format = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  console.log(format(header));
  console.log(widths.map((width) => '─'.repeat(width)).join('  '));
  for (const line of lines) console.log(format(line));
}

function describeVerification(verification: Verification): string {
  const machine = `${verification.machine.id} v${verification.machine.version}`;
  if (verification.ok) return `\nverified: today's machine (${machine}) reproduces all ${verification.verified} alerts`;
  const { seq, reason, event, recorded, recomputed } = verification.divergence;
  const lines = [`\nDIVERGES at sequence ${seq} (after ${verification.verified} alerts that reproduce) on ${machine}:`, `  why         ${reason}`];
  if (event) {
    lines.push(
      `  event       ${JSON.stringify(event)}`,
      `  recorded    ${show(recorded)}`,
      `  recomputed  ${recomputed === undefined ? "refused: today's machine cannot take this event there" : show(recomputed)}`,
    );
  }
  return lines.join('\n');
}
