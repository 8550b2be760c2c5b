// The QEMU processes of this host's VMs: launched so they outlive the agent, found again through
// their QMP sockets (checking the guest name), remembered while attached, and ended on destroy.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Logger } from '../../src/log.ts';
import type { EntityEvent } from './driver.ts';
import { defaultAccel, launchQemu, logTail, qemuFiles, QEMU_SYSTEM_HINT, runningPid, type QemuFiles } from './qemu-process.ts';
import { killPid, QemuErrors, QemuVm, WorkError } from './qemu-vm.ts';
import { QmpClient } from './qmp.ts';
import { LastErrorCodes } from '../../src/domain/last-errors.ts';

/** What a VM's QEMU is made of, from its definition. */
export type Definition = { memoryMiB: number; cpus: number; disks: string[] };

export type QemuHostOptions = {
  vmDir: string;
  binary?: string;
  accel?: 'kvm' | 'tcg';
  extraArgs?: string[];
  logger: Logger;
  /** Where QEMU's own events, as the VM machine's fault events, go. */
  fault: (vmId: string, event: EntityEvent) => void;
};

export class QemuHost {
  readonly accel: 'kvm' | 'tcg';
  readonly #vms = new Map<string, QemuVm>();
  readonly #attaching = new Map<string, Promise<QemuVm | undefined>>();
  readonly #launching = new Map<string, Promise<QemuVm>>();
  /**
   * VMs whose QEMU runs here as a migration's destination while another agent owns the entity:
   * their events are not this agent's to record (the fleet's hand-over moves the entity).
   */
  readonly #notOwned = new Set<string>();

  constructor(private readonly options: QemuHostOptions) {
    this.accel = options.accel ?? defaultAccel();
  }

  filesOf(vmId: string): QemuFiles {
    return qemuFiles(this.options.vmDir, vmId);
  }

  /** Lets go of every QMP connection; the processes keep running for the next agent. */
  detachAll(): void {
    for (const vm of this.#vms.values()) vm.detach();
    this.#vms.clear();
  }

  /**
   * Launches a VM's QEMU, remembered until it is up: a destroy that comes while the launch runs
   * waits for it, so the process cannot come to life after the VM was recorded Down.
   */
  launchOnce(vmId: string, definition: Definition): Promise<QemuVm> {
    const launching = this.launch(vmId, definition, { startPaused: true });
    this.#launching.set(vmId, launching);
    void launching.catch(() => undefined).finally(() => {
      if (this.#launching.get(vmId) === launching) this.#launching.delete(vmId);
    });
    return launching;
  }

  /** This agent runs the VM's entity now: QEMU's events are its to record. */
  claim(vmId: string): void {
    this.#notOwned.delete(vmId);
  }

  async launch(vmId: string, definition: Definition, mode: { startPaused: boolean; incoming?: string }): Promise<QemuVm> {
    if (mode.incoming) this.#notOwned.add(vmId);
    else this.claim(vmId);
    const files = this.filesOf(vmId);
    rmSync(files.socket, { force: true });
    rmSync(files.pidFile, { force: true });
    const child = launchQemu({
      vmId,
      files,
      ...definition,
      ...mode,
      accel: this.accel,
      binary: this.options.binary ?? 'qemu-system-x86_64',
      extraArgs: this.options.extraArgs ?? [],
    });
    let spawnError: Error | undefined;
    child.once('error', (error) => (spawnError = error));
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connectWhenReady(files.socket, { timeoutMs: 20_000, alive: () => !spawnError && child.exitCode === null && child.signalCode === null });
    } catch (error) {
      if (child.pid !== undefined) await killPid(child.pid, 0);
      if ((spawnError as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new WorkError(LastErrorCodes.ToolMissing, QEMU_SYSTEM_HINT);
      throw new WorkError(QemuErrors.Failed, `QEMU did not start: ${logTail(files) || (error as Error).message}`);
    }
    return this.#adopt(vmId, files, child.pid ?? -1, qmp, child);
  }

  #adopt(vmId: string, files: QemuFiles, pid: number, qmp: QmpClient, child?: ChildProcess): QemuVm {
    const vm = new QemuVm(vmId, files, pid, qmp, child, (event) => {
      if (this.#notOwned.has(vmId)) this.options.logger.info('event of a migration destination QEMU, not recorded here', { vmId, event: event.type });
      else this.options.fault(vmId, event);
    });
    this.#vms.set(vmId, vm);
    void vm.gone.then(() => this.forget(vm));
    return vm;
  }

  forget(vm: QemuVm): void {
    if (this.#vms.get(vm.vmId) === vm) this.#vms.delete(vm.vmId);
  }

  /** The QEMU of a VM, attached through its QMP socket if this agent has not held it yet. */
  attach(vmId: string): Promise<QemuVm | undefined> {
    const held = this.#vms.get(vmId);
    if (held?.attached) return Promise.resolve(held);
    let attaching = this.#attaching.get(vmId);
    if (!attaching) {
      attaching = this.#attachNow(vmId).finally(() => this.#attaching.delete(vmId));
      this.#attaching.set(vmId, attaching);
    }
    return attaching;
  }

  async #attachNow(vmId: string): Promise<QemuVm | undefined> {
    const files = this.filesOf(vmId);
    const pid = runningPid(files);
    if (pid === undefined) return undefined;
    const qmp = await QmpClient.connect(files.socket);
    const { name } = await qmp.execute<{ name?: string }>('query-name');
    if (name !== vmId) {
      qmp.close();
      throw new WorkError(QemuErrors.Failed, `the QEMU at ${files.socket} runs guest ${JSON.stringify(name)}, not ${vmId}`);
    }
    this.options.logger.info('attached to a running QEMU', { vmId, pid });
    return this.#adopt(vmId, files, pid, qmp);
  }

  async running(vmId: string): Promise<QemuVm> {
    const vm = await this.attach(vmId);
    if (!vm) throw new WorkError(QemuErrors.Exited, `QEMU for VM ${vmId} is not running`);
    return vm;
  }

  async destroy(vmId: string): Promise<void> {
    await this.#launching.get(vmId)?.catch(() => undefined);
    const files = this.filesOf(vmId);
    const vm = await this.attach(vmId).catch(() => undefined);
    if (vm) {
      await vm.quit();
      this.forget(vm);
    } else {
      const pid = runningPid(files);
      if (pid !== undefined) {
        process.kill(pid, 'SIGTERM');
        await killPid(pid, 5_000);
      }
    }
    rmSync(files.socket, { force: true });
    rmSync(files.pidFile, { force: true });
  }
}
