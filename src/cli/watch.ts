// `opstream watch <filter>`: live progress of every operation on the matching entities — a bar
// per entity on a terminal, plain lines elsewhere — exiting when the watched operations end:
// 0 if all of them succeeded, 1 if any ended with a lastError.
import { styleText } from 'node:util';
import cliProgress from 'cli-progress';
import type { AlertNotification, FilterType, ReceivedOperationInfo } from '../index.ts';
import { isOperationComplete } from '../index.ts';
import { connectAgent, type AgentAccess } from './agent-access.ts';
import { formatAlertLine, formatOperationInfo } from './format.ts';

export type WatchOptions = AgentAccess & { regexp: boolean; follow: boolean };

type Running = { alertName: string; operationInfo: ReceivedOperationInfo; seq: number };

/** Where progress goes: bars on a terminal, lines in a pipe or a log. */
interface ProgressView {
  show(alertName: string, info: ReceivedOperationInfo, seq: number): void;
  end(alertName: string, info: ReceivedOperationInfo, seq: number): void;
  stop(): void;
}

export async function watch(filter: string, options: WatchOptions): Promise<number> {
  const filterType: FilterType = options.regexp ? 'regexp' : 'glob';
  const client = await connectAgent(options);
  const view: ProgressView = process.stdout.isTTY ? new Bars() : new Lines();
  const watched = new Set<string>();
  let failures = 0;
  let ended = 0;
  try {
    // Subscribe first, then read what is running: nothing falls between the two.
    const since = await client.subscribe(filter, filterType);
    const running = await client.call<Running[]>('Host.getRunningOperations', { filter, filterType });
    for (const operation of running) {
      watched.add(operation.alertName);
      view.show(operation.alertName, operation.operationInfo, operation.seq);
    }
    if (watched.size === 0) console.error(`watching ${filter}: nothing running yet; waiting for an operation (Ctrl-C stops)`);
    for (;;) {
      const alert: AlertNotification = await client.waitForEvent(filter, 3_600_000, filterType);
      if (alert.seq <= since) continue;
      const info = alert.operationInfo;
      if (!isOperationComplete(info)) {
        watched.add(alert.alertName);
        view.show(alert.alertName, info, alert.seq);
        continue;
      }
      if (!watched.delete(alert.alertName)) {
        if (info.lastError[0] !== 0) view.end(alert.alertName, info, alert.seq); // a fault on an idle entity
        continue;
      }
      ended += 1;
      if (info.lastError[0] !== 0) failures += 1;
      view.end(alert.alertName, info, alert.seq);
      if (watched.size === 0 && !options.follow) break;
    }
  } finally {
    view.stop();
    await client.close();
  }
  console.error(`${ended} operation${ended === 1 ? '' : 's'} ended, ${failures} with an error`);
  return failures > 0 ? 1 : 0;
}

/** Off a terminal every alert is one line, the last one of an operation included. */
class Lines implements ProgressView {
  show(alertName: string, info: ReceivedOperationInfo, seq: number): void {
    console.log(formatAlertLine(alertName, seq, info, false));
  }
  end = this.show;
  stop(): void {}
}

class Bars implements ProgressView {
  readonly #multibar = new cliProgress.MultiBar(
    { format: '{name} [{bar}] {shown} {description}', hideCursor: true, clearOnComplete: false, barsize: 30 },
    cliProgress.Presets.shades_classic,
  );
  readonly #bars = new Map<string, cliProgress.SingleBar>();

  show(alertName: string, info: ReceivedOperationInfo): void {
    const payload = this.#payload(alertName, info);
    const bar = this.#bars.get(alertName);
    if (bar) bar.update(Math.max(0, info.percentage), payload);
    else this.#bars.set(alertName, this.#multibar.create(100, Math.max(0, info.percentage), payload));
  }

  end(alertName: string, info: ReceivedOperationInfo): void {
    const bar = this.#bars.get(alertName) ?? this.#multibar.create(100, 0, this.#payload(alertName, info));
    bar.update(info.lastError[0] === 0 ? 100 : bar.getProgress() * 100, this.#payload(alertName, info));
    this.#bars.delete(alertName);
  }

  stop(): void {
    this.#multibar.stop();
  }

  #payload(alertName: string, info: ReceivedOperationInfo) {
    const failed = info.lastError[0] !== 0;
    const description = formatOperationInfo(info, true);
    const shown = isOperationComplete(info) ? (failed ? 'FAIL' : 'done') : info.percentage < 0 ? '  ?%' : `${String(info.percentage).padStart(3)}%`;
    return {
      name: alertName.padEnd(28),
      shown,
      description: failed ? styleText('red', description) : description,
    };
  }
}
