// Gluster work by asking and polling: the driver tells gluster to start something, then polls
// its status every `pollMs` and reports what it sees — progress, the end, or the brick it failed on.
import type { DriverEvent } from '../../machines/entity.ts';
import { whenAborted, type BrickHeal, type Driver, type VolumeQueries, type WorkReporter, type WorkRequest, type WorkSignal } from './driver.ts';
import type { SimulatedGluster } from './simulated-gluster.ts';
import { LastErrorCodes } from '../../src/domain/last-errors.ts';

/** lastError code of a rebalance that failed on a brick. */
export const REBALANCE_FAILED = LastErrorCodes.RebalanceFailed;

export class GlusterDriver implements Driver, VolumeQueries {
  constructor(
    private readonly gluster: SimulatedGluster,
    private readonly options: { pollMs?: number } = {},
  ) {}

  start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
    const name = request.id;
    const { bricks = [] } = request.context as { bricks?: string[] };
    switch (request.work) {
      case 'createVolume':
        return this.#poll(report, signal, () => (request.resumed && this.#exists(name) ? undefined : this.gluster.create(name, bricks)), () => ({ type: 'WORK_DONE' }));
      case 'startVolume':
        return this.#poll(report, signal, () => this.gluster.start(name), () => (this.gluster.isStarted(name) ? { type: 'WORK_DONE' } : undefined));
      case 'stopVolume':
        return this.#poll(report, signal, () => this.gluster.stop(name), () => (this.gluster.isStarted(name) ? undefined : { type: 'WORK_DONE' }));
      case 'rebalance':
        // Resumed after an agent restart: gluster kept going, so only the polling starts again.
        return this.#poll(report, signal, () => (request.resumed ? undefined : this.gluster.startRebalance(name)), () => this.#rebalanceEvent(name));
      case 'stopRebalance':
        return this.#poll(report, signal, () => this.gluster.stopRebalance(name), () => {
          const { state } = this.gluster.rebalanceStatus(name);
          return state === 'in progress' ? undefined : { type: 'WORK_DONE' };
        });
      default:
        return this.#poll(report, signal, () => {
          throw new Error(`the gluster driver has no work ${request.work}`);
        }, () => undefined);
    }
  }

  /** Asked of gluster now; a volume it does not know is an error naming it. */
  healInfo(volumeName: string): BrickHeal[] {
    return this.gluster.healInfo(volumeName);
  }

  #rebalanceEvent(name: string): DriverEvent | undefined {
    const status = this.gluster.rebalanceStatus(name);
    switch (status.state) {
      case 'completed':
      case 'stopped':
        return { type: 'WORK_DONE' };
      case 'failed': {
        const { brick = 'unknown brick', reason = 'unknown reason' } = status.failure ?? {};
        return { type: 'WORK_FAILED', error: [REBALANCE_FAILED, `rebalance failed on brick ${brick}: ${reason}`] };
      }
      default:
        return { type: 'WORK_PROGRESS', percentage: status.totalFiles ? Math.floor((100 * status.scannedFiles) / status.totalFiles) : 0 };
    }
  }

  #exists(name: string): boolean {
    try {
      this.gluster.rebalanceStatus(name);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Runs `begin`, then asks `check` every pollMs until it answers with a WORK_DONE or WORK_FAILED;
   * WORK_PROGRESS answers are reported and polling goes on.
   */
  #poll(report: WorkReporter, signal: WorkSignal, begin: () => void, check: () => DriverEvent | undefined): void {
    let timer: NodeJS.Timeout | undefined;
    const tick = () => {
      if (signal.aborted) return;
      let event: DriverEvent | undefined;
      try {
        event = check();
      } catch (error) {
        event = { type: 'WORK_FAILED', error: [LastErrorCodes.Failed, (error as Error).message] };
      }
      if (event) void report(event);
      if (!event || event.type === 'WORK_PROGRESS') timer = setTimeout(tick, this.options.pollMs ?? 250);
    };
    timer = setTimeout(() => {
      try {
        begin();
      } catch (error) {
        void report({ type: 'WORK_FAILED', error: [LastErrorCodes.Failed, (error as Error).message] });
        return;
      }
      tick();
    }, 0);
    whenAborted(signal, () => clearTimeout(timer));
  }
}
