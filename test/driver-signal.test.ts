// Drivers take an AbortSignal (as xstate's promise actors do), not a home-made cancel handle: the
// runtime aborts it when the work's state is left, and the driver then reports nothing more. Each
// driver here runs one work to its end with a live signal (so the check could fail), and the same
// work again with the signal aborted right after the start.
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Driver, WorkRequest } from '../actors/drivers/driver.ts';
import { GlusterDriver } from '../actors/drivers/gluster-driver.ts';
import { QemuImageDriver } from '../actors/drivers/qemu-image-driver.ts';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { SimulatedGluster } from '../actors/drivers/simulated-gluster.ts';
import { TcpConnectionDriver } from '../actors/drivers/tcp-connection-driver.ts';
import { CompositeDriver } from '../actors/drivers/composite-driver.ts';
import { EntityKinds } from '../src/domain/subjects.ts';

const imageDir = mkdtempSync(join(tmpdir(), 'opstream-signal-'));
afterAll(() => rmSync(imageDir, { recursive: true, force: true }));

/** Runs `request` and collects what the driver reports until it ends or `settleMs` pass. */
async function run(driver: Driver, request: WorkRequest, abort: boolean, settleMs = 150): Promise<string[]> {
  const events: string[] = [];
  const controller = new AbortController();
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
  for (const { name, driver, request, before } of CASES) {
    it(name, async () => {
      n += 1;
      before?.(n);
      expect(await run(driver(), request(n), false)).toContain('WORK_DONE');
      n += 1;
      before?.(n);
      expect(await run(driver(), request(n), true)).toEqual([]);
      if (name.startsWith('qemu-image')) expect(existsSync(images.pathOf(`img-${n}`)), 'an aborted delete must not delete').toBe(true);
    });
  }
});
