// VMs as QEMU processes driven over QMP. Each state's work is something QEMU does and confirms:
// a launch that ends with QEMU's RESUME, a pause with its STOP, a destroy with the process gone;
// what QEMU does on its own (an I/O error, an exit) comes back as fault events. The processes
// outlive the agent: a restarted agent finds them again through their QMP sockets.
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import type { DriverEvent } from '../../machines/entity.ts';
import { EntityKinds } from '../../src/domain/subjects.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import type { Driver, EntityEvent, EntityEventSink, WorkReporter, WorkRequest, WorkSignal } from './driver.ts';
import { QemuHost, type Definition } from './qemu-host.ts';
import { listenForMigration, migrate, requestIncoming, serveIncoming, type IncomingRequest } from './qemu-migration.ts';
import { runningPid, type QemuFiles } from './qemu-process.ts';
import { pausedOutside, QemuErrors, WorkError } from './qemu-vm.ts';
import { EIO_ERROR } from './simulated-driver.ts';

export type QemuVmDriverOptions = {
  /** Where each VM's directory (QMP socket, pid file, log) goes: `<vmDir>/<vmId>/`. */
  vmDir: string;
  /** This agent's host id: the destination of migrations asks for it. */
  hostId: string;
  binary?: string;
  /** Default: KVM where /dev/kvm opens, TCG otherwise. */
  accel?: 'kvm' | 'tcg';
  /** The qcow2 file of an Image entity (the image driver's); without it VMs cannot have disks. */
  imagePath?: (imageId: string) => string;
  /** Migration bandwidth cap in bytes per second (QMP `max-bandwidth`); QEMU's default when absent. */
  migrationMaxBandwidth?: number;
  /** The address incoming migrations listen on, as the source reaches it. */
  migrationAddress?: string;
  /** Appended to every QEMU command line (tests fill guest memory with `-device loader`). */
  extraArgs?: string[];
  /** How often `query-migrate` is read during a migration. */
  migrationPollMs?: number;
  logger?: Logger;
};

export class QemuVmDriver implements Driver {
  readonly #host: QemuHost;
  readonly #migrationUris = new Map<string, string>();
  readonly #faults = new Map<string, Promise<unknown>>();
  readonly #logger: Logger;
  #sink: EntityEventSink | undefined;
  #nc: NatsConnection | undefined;
  #incoming: { stop(): Promise<void> } | undefined;

  constructor(private readonly options: QemuVmDriverOptions) {
    this.#logger = options.logger ?? createLogger('qemu');
    this.#host = new QemuHost({ ...options, logger: this.#logger, fault: (vmId, event) => this.#fault(vmId, event) });
  }

  connect(sink: EntityEventSink): void {
    this.#sink = sink;
  }

  /** Joins the bus: answers migrations to this host and can ask other hosts for theirs. */
  serve(nc: NatsConnection): void {
    this.#nc = nc;
    this.#incoming = serveIncoming(nc, this.options.hostId, (request) => this.#prepareIncoming(request), this.#logger);
  }

  filesOf(vmId: string): QemuFiles {
    return this.#host.filesOf(vmId);
  }

  /** QEMU's own status of a VM this driver holds (tests, and the destination of a migration). */
  async status(vmId: string): Promise<{ status: string; running: boolean; pid: number } | undefined> {
    const vm = await this.#host.attach(vmId);
    return vm ? { ...(await vm.status()), pid: vm.pid } : undefined;
  }

  /** A QMP command on a VM this driver holds (tests and benchmarks read QEMU's own view). */
  async qmp<T = Record<string, unknown>>(vmId: string, command: string, args?: Record<string, unknown>): Promise<T> {
    return (await this.#host.running(vmId)).qmp.execute<T>(command, args);
  }

  /** An HMP command on the VM's monitor, as an operator at QEMU's console would type it. */
  async humanMonitor(vmId: string, commandLine: string): Promise<string> {
    const vm = await this.#host.running(vmId);
    return vm.qmp.execute<string>('human-monitor-command', { 'command-line': commandLine });
  }

  /** Lets go of every QMP connection; the QEMU processes keep running for the next agent. */
  async close(): Promise<void> {
    await this.#incoming?.stop();
    this.#host.detachAll();
  }

  start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
    // Work for a VM means this agent's runtime runs its entity: its QEMU's events are ours.
    this.#host.claim(request.id);
    const progress = (percentage: number) => void report({ type: 'WORK_PROGRESS', percentage });
    const finish = (event: DriverEvent) => {
      if (!signal.aborted) void report(event);
    };
    this.#work(request, signal, progress)
      .then((done) => done && finish({ type: 'WORK_DONE' }))
      .catch((error: unknown) => {
        const code = error instanceof WorkError ? error.code : QemuErrors.Failed;
        finish({ type: 'WORK_FAILED', error: [code, error instanceof Error ? error.message : String(error)] });
      });
  }

  /** Does one work; true when it ends with WORK_DONE (watches end with nothing to report). */
  async #work(request: WorkRequest, signal: WorkSignal, progress: (percentage: number) => void): Promise<boolean> {
    const vmId = request.id;
    switch (request.work) {
      case 'prepare':
        this.#definition(request.context);
        if (runningPid(this.#host.filesOf(vmId)) !== undefined) {
          throw new WorkError(QemuErrors.Failed, `a QEMU for VM ${vmId} already runs (pid file ${this.#host.filesOf(vmId).pidFile}); end it before creating the VM again`);
        }
        return true;
      case 'powerUp': {
        // After an agent restart the QEMU may already be there: never start a second one.
        const vm = (await this.#host.attach(vmId)) ?? (await this.#host.launchOnce(vmId, this.#definition(request.context)));
        progress(50);
        await vm.cont();
        return true;
      }
      case 'watchRunning':
      case 'watchPaused':
        // A watch has no WORK_* to report: a QEMU it cannot reach is only worth a warning here
        // (its exit, when it comes, arrives as EXITED).
        await this.#reconcile(vmId, request.work === 'watchRunning', signal).catch((error: unknown) =>
          this.#logger.warn('cannot watch the VM\'s QEMU', { vmId, error: String(error) }),
        );
        return false;
      case 'pause':
        await (await this.#host.running(vmId)).pause();
        return true;
      case 'resume':
        await (await this.#host.running(vmId)).cont();
        return true;
      case 'powerDown':
        await this.#host.destroy(vmId);
        return true;
      case 'prepareMigration':
        return this.#prepareMigration(request);
      case 'copyMemory': {
        const uri = this.#migrationUris.get(vmId);
        if (!uri) throw new WorkError(QemuErrors.Migration, `no destination prepared for VM ${vmId}'s migration`);
        const vm = await this.#host.running(vmId);
        try {
          await migrate(vm, { uri, maxBandwidth: this.options.migrationMaxBandwidth, pollMs: this.options.migrationPollMs ?? 200, signal, onProgress: progress });
        } catch (error) {
          throw new WorkError(QemuErrors.Migration, (error as Error).message);
        } finally {
          this.#migrationUris.delete(vmId);
        }
        // The guest runs at the destination now; this QEMU has nothing left to do.
        await vm.quit();
        this.#host.forget(vm);
        return true;
      }
      case 'finishMigration':
        // The destination's half, after the source handed the entity over: the QEMU that received
        // the memory (or, after a restart here, the one the pid file names) must run the guest.
        return this.#takeOverMigrated(vmId, signal);
      default:
        throw new WorkError(QemuErrors.Failed, `the QEMU driver has no work ${request.work}`);
    }
  }

  #definition(context: Readonly<Record<string, unknown>>): Definition {
    const params = (context['params'] ?? {}) as { memoryMiB?: number; cpus?: number; disks?: Array<{ imageId?: string; diskId?: string }> };
    const disks = (params.disks ?? []).map(({ imageId, diskId }) => {
      if (!this.options.imagePath) throw new WorkError(QemuErrors.Failed, 'VM disks need the qemu image driver (--image-driver qemu)');
      if (!imageId) throw new WorkError(QemuErrors.Failed, `disk ${diskId ?? '?'} has no imageId: QEMU needs an Image entity's file`);
      return this.options.imagePath(imageId);
    });
    return { memoryMiB: params.memoryMiB ?? 128, cpus: params.cpus ?? 1, disks };
  }

  /** Where a settled VM is: compare what QEMU says with the state the stream recorded. */
  async #reconcile(vmId: string, recordedRunning: boolean, signal: WorkSignal): Promise<void> {
    const vm = await this.#host.attach(vmId);
    if (signal.aborted) return;
    if (!vm) {
      this.#fault(vmId, { type: 'EXITED', error: [QemuErrors.Exited, `QEMU for VM ${vmId} is not running: it ended while the agent was not watching`] });
      return;
    }
    if (recordedRunning) {
      // A migration the agent gave up on (it restarted mid-way) must not finish behind its back.
      const migration = await vm.qmp.execute<{ status?: string }>('query-migrate');
      if (migration.status === 'active' || migration.status === 'setup') await vm.qmp.execute('migrate_cancel');
    }
    const { status, running } = await vm.status();
    if (signal.aborted) return;
    if (recordedRunning && !running) {
      this.#fault(vmId, status === 'io-error' ? { type: 'IO_ERROR', error: EIO_ERROR } : { type: 'STOPPED', error: pausedOutside(status) });
    } else if (!recordedRunning && running) {
      this.#fault(vmId, { type: 'RESUMED' });
    }
  }

  async #takeOverMigrated(vmId: string, signal: WorkSignal): Promise<boolean> {
    const vm = await this.#host.attach(vmId);
    if (!vm) throw new WorkError(QemuErrors.Migration, `no QEMU for VM ${vmId} runs on ${this.options.hostId}: the migrated guest is gone`);
    // QEMU resumes the guest on its own once the incoming migration completes; wait for that.
    for (let waited = 0; ; waited += 100) {
      const { status, running } = await vm.status();
      if (running) return true;
      if (signal.aborted) return false;
      if (waited >= 30_000 || !['inmigrate', 'postmigrate', 'finish-migrate', 'prelaunch'].includes(status)) {
        throw new WorkError(QemuErrors.Migration, `the destination QEMU of VM ${vmId} is ${status}, not running the guest`);
      }
      await sleep(100);
    }
  }

  async #prepareMigration(request: WorkRequest): Promise<boolean> {
    const nc = this.#nc;
    if (!nc) throw new WorkError(QemuErrors.Migration, 'the QEMU driver is not on the bus; cannot migrate');
    const dstHost = String(request.context['dstHost'] ?? '');
    if (dstHost === this.options.hostId) throw new WorkError(QemuErrors.Migration, `VM ${request.id} already runs on ${dstHost}`);
    await this.#host.running(request.id);
    const params = (request.context['params'] ?? {}) as Record<string, unknown>;
    const uri = await requestIncoming(nc, dstHost, { vmId: request.id, definition: params, sourceHost: this.options.hostId }).catch((error: Error) => {
      throw new WorkError(QemuErrors.Migration, error.message);
    });
    this.#migrationUris.set(request.id, uri);
    return true;
  }

  /** The destination half: a QEMU with the VM's definition waiting for the memory to arrive. */
  async #prepareIncoming(request: IncomingRequest): Promise<string> {
    const { vmId } = request;
    if (!/^[^.*>\s]{1,128}$/.test(vmId)) throw new Error(`invalid vmId ${JSON.stringify(vmId)}`);
    const existing = await this.#host.attach(vmId).catch(() => undefined);
    if (existing) {
      // One still waiting for memory is left from an attempt the source gave up (it restarted).
      if ((await existing.status()).status !== 'inmigrate') {
        throw new Error(`a QEMU for VM ${vmId} already runs on ${this.options.hostId} (pid ${existing.pid})`);
      }
      await existing.quit();
      this.#host.forget(existing);
    }
    const vm = await this.#host.launch(vmId, this.#definition({ params: request.definition }), { startPaused: false, incoming: 'defer' });
    try {
      return await listenForMigration(vm, this.options.migrationAddress ?? '127.0.0.1');
    } catch (error) {
      await vm.quit();
      throw error;
    }
  }

  /** Sends a fault to the VM's entity, in QEMU's order; one the entity's state refuses is dropped. */
  #fault(vmId: string, event: EntityEvent): void {
    const sink = this.#sink;
    if (!sink) return;
    const previous = this.#faults.get(vmId) ?? Promise.resolve();
    const next = previous
      .then(() => sink({ kind: EntityKinds.VM, id: vmId }, event))
      .catch((error: unknown) => this.#logger.debug('fault not taken', { vmId, event: event.type, error: String(error) }));
    this.#faults.set(vmId, next);
  }
}
