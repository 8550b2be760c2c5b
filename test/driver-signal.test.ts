// Drivers take a WorkSignal, the part of an AbortSignal they use (as xstate's promise actors take
// an AbortSignal): the runtime aborts it when the work's state is left, and the driver then reports
// nothing more. Each driver here runs one work to its end with a live signal (so the check could
// fail), and the same work again with the signal aborted right after the start — with the
// runtime's WorkStop and with a standard AbortController's signal, which any driver must take too.
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Driver, WorkRequest, WorkSignal } from '../actors/drivers/driver.ts';
import { WorkStop } from '../actors/work-stop.ts';
import { GlusterDriver } from '../actors/drivers/gluster-driver.ts';
import { QemuImageDriver } from '../actors/drivers/qemu-image-driver.ts';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { SimulatedGluster } from '../actors/drivers/simulated-gluster.ts';
import { TcpConnectionDriver } from '../actors/drivers/tcp-connection-driver.ts';
import { CompositeDriver } from '../actors/drivers/composite-driver.ts';
import { EntityKinds } from '../src/domain/subjects.ts';

const imageDir = mkdtempSync(join(tmpdir(), 'opstream-signal-'));
afterAll(() => rmSync(imageDir, { recursive: true, force: true }));

type Stopper = { signal: WorkSignal; abort(): void };
const STOPPERS: Array<{ name: string; make: () => Stopper }> = [
  {
    name: "the runtime's WorkStop",
    make: () => {
      const stop = new WorkStop((error) => {
        throw error;
      });
      return { signal: stop, abort: () => stop.abort() };
    },
  },
  { name: 'an AbortSignal', make: () => new AbortController() },
];

/** Runs `request` and collects what the driver reports until it ends or `settleMs` pass. */
async function run(driver: Driver, request: WorkRequest, abort: boolean, stopper: () => Stopper, settleMs = 150): Promise<string[]> {
  const events: string[] = [];
  const controller = stopper();
  let ended: () => void = () => undefined;
  const end = new Promise<void>((resolve) => (ended = resolve));
  driver.start(request, async (event) => {
    events.push(event.type);
    if (event.type === 'WORK_DONE' || event.type === 'WORK_FAILED') ended();
  }, controller.signal);
  if (abort) controller.abort();
  await Promise.race([end, sleep(abort ? settleMs : 10_000)]);
  return events;
}

const sim = new SimulatedDriver({ stepMs: 5 });
const gluster = new SimulatedGluster({ tickMs: 5 });
const glusterDriver = new GlusterDriver(gluster, { pollMs: 5 });
const images = new QemuImageDriver({ imageDir });

const CASES: Array<{ name: string; driver: () => Driver; request: (n: number) => WorkRequest; before?: (n: number) => void }> = [
  { name: 'simulated', driver: () => sim, request: (n) => ({ kind: EntityKinds.VM, id: `vm-${n}`, work: 'prepare', context: {}, resumed: false }) },
  {
    name: 'gluster',
    driver: () => glusterDriver,
    request: (n) => ({ kind: EntityKinds.GlusterVolume, id: `vol-${n}`, work: 'createVolume', context: { bricks: [`h:/b${n}`] }, resumed: false }),
  },
  { name: 'tcp connection', driver: () => new TcpConnectionDriver(), request: (n) => ({ kind: EntityKinds.StorageConnection, id: `c-${n}`, work: 'disconnect', context: {}, resumed: false }) },
  {
    name: 'qemu-image (delete)',
    driver: () => images,
    before: (n) => writeFileSync(images.pathOf(`img-${n}`), 'x'),
    request: (n) => ({ kind: EntityKinds.Image, id: `img-${n}`, work: 'deleteImage', context: {}, resumed: false }),
  },
  {
    name: 'composite',
    driver: () => new CompositeDriver({ VM: sim, 'Storage.Image': images, 'Storage.Connection': new TcpConnectionDriver(), 'Gluster.Volume': glusterDriver }),
    request: (n) => ({ kind: EntityKinds.VM, id: `vm-c-${n}`, work: 'prepare', context: {}, resumed: false }),
  },
];

describe('drivers stop on an aborted signal', () => {
  let n = 0;
  for (const stopper of STOPPERS) {
    for (const { name, driver, request, before } of CASES) {
      it(`${name}, with ${stopper.name}`, async () => {
        n += 1;
        before?.(n);
        expect(await run(driver(), request(n), false, stopper.make)).toContain('WORK_DONE');
        n += 1;
        before?.(n);
        expect(await run(driver(), request(n), true, stopper.make)).toEqual([]);
        if (name.startsWith('qemu-image')) expect(existsSync(images.pathOf(`img-${n}`)), 'an aborted delete must not delete').toBe(true);
      });
    }
  }
});

describe("the runtime's WorkStop", () => {
  it('runs each listener once, in the order added, and none that was removed or came after the abort', () => {
    const calls: string[] = [];
    const stop = new WorkStop(() => calls.push('error'));
    const a = () => calls.push('a');
    const b = () => calls.push('b');
    const removed = () => calls.push('removed');
    stop.addEventListener('abort', a);
    stop.addEventListener('abort', b);
    stop.addEventListener('abort', a);
    stop.addEventListener('abort', removed);
    stop.removeEventListener('abort', removed);
    expect(stop.aborted).toBe(false);
    stop.abort();
    stop.abort();
    stop.addEventListener('abort', () => calls.push('late'));
    expect(stop.aborted).toBe(true);
    expect(calls).toEqual(['a', 'b']);
  });

  it('does not run a listener that an earlier one removed', () => {
    const ran: string[] = [];
    const stop = new WorkStop(() => undefined);
    const second = () => ran.push('second');
    stop.addEventListener('abort', () => {
      ran.push('first');
      stop.removeEventListener('abort', second);
    });
    stop.addEventListener('abort', second);
    stop.abort();
    expect(ran).toEqual(['first']);
  });

  it('reports a listener that throws and still runs the others, even when the report fails too', () => {
    const ran: string[] = [];
    const stop = new WorkStop(() => {
      throw new Error('the logger failed');
    });
    stop.addEventListener('abort', () => {
      throw new Error('the clean-up failed');
    });
    stop.addEventListener('abort', () => ran.push('after'));
    stop.abort();
    expect(ran).toEqual(['after']);
  });

  it('reports a listener that throws and still runs the others', () => {
    const reported: unknown[] = [];
    const ran: string[] = [];
    const stop = new WorkStop((error) => reported.push(error));
    const failure = new Error('the clean-up failed');
    stop.addEventListener('abort', () => {
      throw failure;
    });
    stop.addEventListener('abort', () => ran.push('after'));
    stop.abort();
    expect(reported).toEqual([failure]);
    expect(ran).toEqual(['after']);
  });
});
