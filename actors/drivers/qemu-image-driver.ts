// Images as local qcow2 files, worked on by `qemu-img`: create (with a backing file for a layer),
// copy (`convert -p`), merge (`commit -p`, then the layer goes) and delete. Percentages are the
// tool's own: it prints "(12.50/100%)" records, which are parsed as they come.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ErrorTuple } from '../../machines/entity.ts';
import { whenAborted, type Driver, type EntityRef, type WorkReporter, type WorkRequest, type WorkSignal } from './driver.ts';
import { LastErrorCodes } from '../../src/domain/last-errors.ts';

export type QemuImageDriverOptions = {
  /** Where image files live. */
  imageDir: string;
  qemuImg?: string;
};

type ImageWorkContext = { size: number | null; baseImageId: string | null; sourceImageId: string | null };

const PROGRESS = /\((\d+(?:\.\d+)?)\/100%\)/g;

/** The one line to print when qemu-img is missing. */
export const QEMU_IMG_HINT = 'qemu-img not found: install it (Debian: apt-get install qemu-utils) or run with --image-driver sim';

export function qemuImgAvailable(qemuImg = 'qemu-img'): boolean {
  return spawnSync(qemuImg, ['--version']).status === 0;
}

export class QemuImageDriver implements Driver {
  readonly #qemuImg: string;
  /** The exit of each image's running qemu-img, so an abort can wait for the process to be gone. */
  readonly #exits = new Map<string, Promise<void>>();
  /** Every progress figure the tool prints, before rounding (tests compare alerts with it). */
  onToolProgress?: (ref: EntityRef, percent: number) => void;

  constructor(private readonly options: QemuImageDriverOptions) {
    this.#qemuImg = options.qemuImg ?? 'qemu-img';
    mkdirSync(options.imageDir, { recursive: true });
  }

  /** The file of an image; ids are base64url-encoded so any valid id is a safe file name. */
  pathOf(imageId: string): string {
    return join(this.options.imageDir, `${Buffer.from(imageId).toString('base64url')}.qcow2`);
  }

  start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
    const context = request.context as ImageWorkContext;
    const path = this.pathOf(request.id);
    switch (request.work) {
      case 'createImage': {
        const args = context.baseImageId
          ? ['create', '-f', 'qcow2', '-b', this.pathOf(context.baseImageId), '-F', 'qcow2', path, ...(context.size ? [String(context.size)] : [])]
          : ['create', '-f', 'qcow2', path, String(context.size ?? 0)];
        this.#run(request, args, report, signal);
        return;
      }
      case 'copyImage':
        this.#run(request, ['convert', '-p', '-O', 'qcow2', this.pathOf(context.sourceImageId ?? ''), path], report, signal);
        return;
      case 'mergeImage':
        this.#run(request, ['commit', '-p', path], report, signal, () => rmSync(path, { force: true }));
        return;
      case 'deleteImage':
        immediately(report, signal, () => rmSync(path, { force: true }));
        return;
      case 'abortCopy':
        // The runtime killed the copy when the cancel was stored; once qemu-img has exited (or
        // after a restart, when none runs) the partial destination goes.
        this.#afterExit(request.id, report, signal, () => rmSync(path, { force: true }));
        return;
      default:
        immediately(report, signal, () => {
          throw new Error(`the image driver has no work ${request.work}`);
        });
    }
  }

  #run(request: WorkRequest, args: string[], report: WorkReporter, signal: WorkSignal, afterSuccess?: () => void): void {
    if (signal.aborted) return;
    const child = spawn(this.#qemuImg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    this.#exits.set(request.id, exited);
    void exited.then(() => {
      if (this.#exits.get(request.id) === exited) this.#exits.delete(request.id);
    });
    let stderr = '';
    let lastPercent = -1;
    let cancelled = false;
    child.stdout.on('data', (chunk: Buffer) => {
      for (const match of chunk.toString().matchAll(PROGRESS)) {
        const percent = Number(match[1]);
        this.onToolProgress?.(request, percent);
        const rounded = Math.floor(percent);
        // 100% is the end, which WORK_DONE reports; progress in between once per whole percent.
        if (rounded > lastPercent && rounded < 100) {
          lastPercent = rounded;
          void report({ type: 'WORK_PROGRESS', percentage: rounded });
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error) => {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      void report({ type: 'WORK_FAILED', error: missing ? [LastErrorCodes.ToolMissing, QEMU_IMG_HINT] : [LastErrorCodes.Failed, error.message] });
    });
    child.once('exit', (code) => {
      if (cancelled) return;
      if (code !== 0) {
        void report({ type: 'WORK_FAILED', error: toolError(stderr, code) });
        return;
      }
      try {
        afterSuccess?.();
        void report({ type: 'WORK_DONE' });
      } catch (error) {
        void report({ type: 'WORK_FAILED', error: [LastErrorCodes.Failed, (error as Error).message] });
      }
    });
    whenAborted(signal, () => {
      cancelled = true;
      child.kill('SIGTERM');
    });
  }

  #afterExit(imageId: string, report: WorkReporter, signal: WorkSignal, work: () => void): void {
    void (this.#exits.get(imageId) ?? Promise.resolve()).then(() => {
      if (signal.aborted) return;
      try {
        work();
        void report({ type: 'WORK_DONE' });
      } catch (error) {
        void report({ type: 'WORK_FAILED', error: [LastErrorCodes.Failed, (error as Error).message] });
      }
    });
  }
}

/** qemu-img's last stderr line, with an errno-like code where one is recognisable. */
function toolError(stderr: string, exitCode: number | null): ErrorTuple {
  const message = stderr.trim().split('\n').pop() ?? `qemu-img exited with ${exitCode}`;
  if (/No such file or directory/i.test(message)) return [LastErrorCodes.NoSuchFile, message];
  if (/No space left on device/i.test(message)) return [LastErrorCodes.NoSpace, message];
  if (/Permission denied/i.test(message)) return [LastErrorCodes.PermissionDenied, message];
  return [LastErrorCodes.Failed, message];
}

function immediately(report: WorkReporter, signal: WorkSignal, work: () => void): void {
  const timer = setImmediate(() => {
    try {
      work();
      void report({ type: 'WORK_DONE' });
    } catch (error) {
      void report({ type: 'WORK_FAILED', error: [LastErrorCodes.Failed, (error as Error).message] });
    }
  });
  whenAborted(signal, () => clearImmediate(timer));
}
