// One running QEMU as the driver holds it: its QMP connection, and QEMU's own events turned into
// the VM machine's fault events — a guest I/O error, a stop or resume nobody here asked for, a
// process that ended on its own. The agent's own stop/cont/quit are expected, so they are not
// mistaken for faults.
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ErrorTuple } from '../../machines/entity.ts';
import type { EntityEvent } from './driver.ts';
import { processRuns, type QemuFiles } from './qemu-process.ts';
import type { QmpClient, QmpEvent } from './qmp.ts';
import { EIO_ERROR } from './simulated-driver.ts';
import { LastErrorCodes } from '../../src/domain/last-errors.ts';

/** lastError codes the QEMU driver sets, by its own names (the seed's disk error comes from EIO_ERROR). */
export const QemuErrors = {
  /** QEMU would not start, or a QMP command failed. */
  Failed: LastErrorCodes.Failed,
  /** The QEMU process ended without the agent asking. */
  Exited: LastErrorCodes.QemuExited,
  /** QEMU paused the guest without the agent asking (someone else on its monitor, a watchdog...). */
  PausedOutside: LastErrorCodes.QemuPausedOutside,
  Migration: LastErrorCodes.MigrationFailed,
} as const;

/** A work that failed with the lastError code it should carry. */
export class WorkError extends Error {
  override name = 'WorkError';
  constructor(
    readonly code: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export type QemuStatus = { status: string; running: boolean };

export class QemuVm {
  #expectStop = 0;
  #expectResume = 0;
  #expectingExit = false;
  #detached = false;
  #shutdownReason: string | undefined;
  readonly gone: Promise<void>;

  constructor(
    readonly vmId: string,
    readonly files: QemuFiles,
    readonly pid: number,
    readonly qmp: QmpClient,
    /** Present when this agent launched the process (its exit status is then known). */
    private readonly child: ChildProcess | undefined,
    private readonly fault: (event: EntityEvent) => void,
  ) {
    qmp.onEvent((event) => this.#onEvent(event));
    this.gone = new Promise((resolve) => qmp.onClose(() => void this.#onClose().finally(resolve)));
  }

  get attached(): boolean {
    return !this.qmp.closed;
  }

  async status(): Promise<QemuStatus> {
    return this.qmp.execute<QemuStatus>('query-status');
  }

  /** QMP `stop`, done when QEMU's STOP event says the CPUs stopped. */
  async pause(timeoutMs = 10_000): Promise<void> {
    if (!(await this.status()).running) return;
    await this.#expecting('stop', 'STOP', timeoutMs);
  }

  /** QMP `cont`, done when QEMU's RESUME event says the CPUs run. */
  async cont(timeoutMs = 10_000): Promise<void> {
    if ((await this.status()).running) return;
    await this.#expecting('cont', 'RESUME', timeoutMs);
  }

  /** The guest will stop at the end of an outgoing migration: not a fault. Returns the undo. */
  expectStop(): () => void {
    this.#expectStop += 1;
    let undone = false;
    return () => {
      if (undone || this.#expectStop === 0) return;
      undone = true;
      this.#expectStop -= 1;
    };
  }

  /** Ends the process: QMP `quit`, then SIGKILL if it lingers. */
  async quit(timeoutMs = 5_000): Promise<void> {
    this.#expectingExit = true;
    await this.qmp.execute('quit').catch(() => undefined);
    await Promise.race([this.gone, sleep(timeoutMs)]);
    await killPid(this.pid, timeoutMs);
  }

  /** Lets go of the connection and leaves QEMU running (the agent stops; the VM does not). */
  detach(): void {
    this.#detached = true;
    this.qmp.close();
  }

  async #expecting(command: 'stop' | 'cont', event: 'STOP' | 'RESUME', timeoutMs: number): Promise<void> {
    const counter = command === 'stop' ? () => (this.#expectStop += 1) : () => (this.#expectResume += 1);
    counter();
    const seen = this.qmp.waitForEvent(event, timeoutMs);
    try {
      await this.qmp.execute(command);
    } catch (error) {
      if (command === 'stop') this.#expectStop -= 1;
      else this.#expectResume -= 1;
      seen.catch(() => undefined);
      throw error;
    }
    await seen;
  }

  #onEvent(event: QmpEvent): void {
    switch (event.event) {
      case 'BLOCK_IO_ERROR':
        // Only an error the device stops on pauses the guest; `report`/`ignore` keep it running.
        if (event.data?.['action'] === 'stop') this.fault({ type: 'IO_ERROR', error: EIO_ERROR });
        return;
      case 'STOP':
        if (this.#expectStop > 0) this.#expectStop -= 1;
        else void this.#stoppedOutside();
        return;
      case 'RESUME':
        if (this.#expectResume > 0) this.#expectResume -= 1;
        else this.fault({ type: 'RESUMED' });
        return;
      case 'SHUTDOWN':
        this.#shutdownReason = String(event.data?.['reason'] ?? 'unknown');
        return;
      default:
    }
  }

  async #stoppedOutside(): Promise<void> {
    const { status } = await this.status().catch(() => ({ status: 'unknown' }));
    // A disk error stops the guest too; BLOCK_IO_ERROR has reported it with the seed's error.
    if (status === 'io-error' || status === 'shutdown') return;
    this.fault({ type: 'STOPPED', error: pausedOutside(status) });
  }

  async #onClose(): Promise<void> {
    if (this.#detached || this.#expectingExit) return;
    const how = await this.#howItEnded();
    this.fault({ type: 'EXITED', error: [QemuErrors.Exited, `QEMU (pid ${this.pid}) ended without the agent asking: ${how}`] });
  }

  async #howItEnded(): Promise<string> {
    const child = this.child;
    if (child) {
      if (child.exitCode === null && child.signalCode === null) await Promise.race([once(child, 'exit'), sleep(2_000)]);
      if (child.signalCode) return `killed by ${child.signalCode}`;
      if (child.exitCode !== null) return `exit code ${child.exitCode}${this.#shutdownReason ? ` after a shutdown (${this.#shutdownReason})` : ''}`;
    }
    if (this.#shutdownReason) return `shut down (${this.#shutdownReason})`;
    return processRuns(this.pid) ? 'its monitor closed' : 'the process is gone without a shutdown event (killed or crashed)';
  }
}

export function pausedOutside(status: string): ErrorTuple {
  return [QemuErrors.PausedOutside, `QEMU paused the guest without the agent asking (status "${status}")`];
}

/** SIGKILL for a process that outlived `graceMs` (or at once with 0), then waits until it is gone. */
export async function killPid(pid: number, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (processRuns(pid) && Date.now() < deadline) await sleep(20);
  if (!processRuns(pid)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  while (processRuns(pid)) await sleep(20);
}
