// Stands for glusterd: volumes, bricks, and rebalances that run on their own timeline once
// started — the agent cannot be told when they end, only ask. Faults can be planted per brick.
import { ErrorCodes, OpstreamError } from '../../src/domain/errors.ts';

export type RebalanceStatus = {
  state: 'not started' | 'in progress' | 'completed' | 'failed' | 'stopped';
  scannedFiles: number;
  totalFiles: number;
  /** Set when the rebalance failed: the brick it failed on and why. */
  failure?: { brick: string; reason: string };
};

export type HealInfo = Array<{ brick: string; status: 'Connected'; entries: number }>;

type Volume = {
  bricks: string[];
  started: boolean;
  rebalance: RebalanceStatus;
  timer?: NodeJS.Timeout;
  failOnBrick?: string;
};

export type SimulatedGlusterOptions = { filesPerBrick?: number; filesPerTick?: number; tickMs?: number };

export class SimulatedGluster {
  readonly #volumes = new Map<string, Volume>();
  readonly #filesPerBrick: number;
  readonly #filesPerTick: number;
  readonly #tickMs: number;

  constructor(options: SimulatedGlusterOptions = {}) {
    this.#filesPerBrick = options.filesPerBrick ?? 400;
    this.#filesPerTick = options.filesPerTick ?? 50;
    this.#tickMs = options.tickMs ?? 200;
  }

  create(name: string, bricks: string[]): void {
    if (this.#volumes.has(name)) throw new Error(`volume ${name} already exists`);
    for (const volume of this.#volumes.values()) {
      const taken = bricks.find((brick) => volume.bricks.includes(brick));
      if (taken) throw new Error(`brick ${taken} is already part of a volume`);
    }
    this.#volumes.set(name, { bricks, started: false, rebalance: { state: 'not started', scannedFiles: 0, totalFiles: 0 } });
  }

  start(name: string): void {
    this.#volume(name).started = true;
  }

  stop(name: string): void {
    const volume = this.#volume(name);
    clearInterval(volume.timer);
    volume.started = false;
  }

  isStarted(name: string): boolean {
    return this.#volume(name).started;
  }

  startRebalance(name: string): void {
    const volume = this.#volume(name);
    if (!volume.started) throw new Error(`volume ${name} is not started`);
    const totalFiles = this.#filesPerBrick * volume.bricks.length;
    volume.rebalance = { state: 'in progress', scannedFiles: 0, totalFiles };
    clearInterval(volume.timer);
    volume.timer = setInterval(() => this.#advance(volume), this.#tickMs);
  }

  stopRebalance(name: string): void {
    const volume = this.#volume(name);
    clearInterval(volume.timer);
    if (volume.rebalance.state === 'in progress') volume.rebalance = { ...volume.rebalance, state: 'stopped' };
  }

  rebalanceStatus(name: string): RebalanceStatus {
    return { ...this.#volume(name).rebalance };
  }

  healInfo(name: string): HealInfo {
    return this.#volume(name).bricks.map((brick, index) => ({ brick, status: 'Connected', entries: index % 2 }));
  }

  /** The next rebalance of this volume fails halfway, on this brick. */
  failRebalanceOnBrick(name: string, brick: string): void {
    this.#volume(name).failOnBrick = brick;
  }

  #advance(volume: Volume): void {
    const { rebalance } = volume;
    const scannedFiles = Math.min(rebalance.totalFiles, rebalance.scannedFiles + this.#filesPerTick);
    if (volume.failOnBrick && scannedFiles >= rebalance.totalFiles / 2) {
      clearInterval(volume.timer);
      volume.rebalance = { ...rebalance, scannedFiles, state: 'failed', failure: { brick: volume.failOnBrick, reason: 'Transport endpoint is not connected' } };
      volume.failOnBrick = undefined;
      return;
    }
    volume.rebalance = { ...rebalance, scannedFiles, state: scannedFiles >= rebalance.totalFiles ? 'completed' : 'in progress' };
    if (volume.rebalance.state === 'completed') clearInterval(volume.timer);
  }

  #volume(name: string): Volume {
    const volume = this.#volumes.get(name);
    if (!volume) throw new OpstreamError(ErrorCodes.NoSuchEntity, `gluster has no volume ${name}`);
    return volume;
  }
}
