// Managers on the bus: durable positions across outages and server restarts, a group that fails
// over with nothing lost or handled twice, and a late member catching up from history.
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { startManager, type ManagedAlert } from '../src/index.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { seedStream } from './helpers/seed-stream.ts';

let server: NatsTestServer;
let nc: NatsConnection;
beforeAll(async () => {
  server = await NatsTestServer.start();
  nc = await connectNats(server.url, 'seeder');
  await ensureAlertStream(nc);
});
afterAll(async () => {
  await nc?.drain();
  await server?.stop();
});

async function untilConnected(connection: NatsConnection): Promise<void> {
  for (;;) {
    try {
      await connection.flush();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** Resolves once `count` alerts are in `handled`. */
async function until(handled: unknown[], count: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (handled.length < count) {
    if (Date.now() > deadline) throw new Error(`handled ${handled.length} of ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function expectInOrderOnce(handled: ManagedAlert[], expected: number, perEntity: number): void {
  const seqs = handled.map((alert) => alert.seq);
  expect(seqs).toHaveLength(expected);
  expect(new Set(seqs).size).toBe(expected);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  const revisions = new Map<string, number[]>();
  for (const alert of handled) revisions.set(alert.alertName, [...(revisions.get(alert.alertName) ?? []), alert.revision]);
  for (const [, list] of revisions) expect(list).toEqual(Array.from({ length: perEntity }, (_, i) => i + 1));
}

describe('a manager\'s durable position', () => {
  it('receives all 10,000 alerts that flowed while it was away, in order, none twice', async () => {
    const handled: ManagedAlert[] = [];
    const options = { nats: server.url, durableName: 'outage', filter: 'vdsm.VM.outage-*', onAlert: (alert: ManagedAlert) => void handled.push(alert) };
    const first = await startManager(options);
    await first.stop();
    await seedStream(nc, 100, 100, undefined, 'outage');
    const back = await startManager(options);
    await until(handled, 10_000);
    await back.stop();
    expectInOrderOnce(handled, 10_000, 100);
  });

  it('keeps its place across a server restart under it', async () => {
    const handled: ManagedAlert[] = [];
    const manager = await startManager({ nats: server.url, durableName: 'restart', filter: 'vdsm.VM.restart-*', onAlert: (alert) => void handled.push(alert) });
    await seedStream(nc, 3, 100, undefined, 'restart-before');
    await until(handled, 300);
    await server.restart();
    // A publish made while this seeding client is still reconnecting can time out; wait for it.
    await untilConnected(nc);
    await seedStream(nc, 7, 100, undefined, 'restart-after');
    await until(handled, 1_000);
    await manager.stop();
    expectInOrderOnce(handled, 1_000, 100);
  });
});

describe('a group of managers sharing one durable name', () => {
  it('continues with nothing lost and nothing handled twice when a member dies mid-stream', async () => {
    const handled: Array<ManagedAlert & { by: string }> = [];
    const dying = await connectNats(server.url, 'member-a');
    let countA = 0;
    const a = await startManager({
      nats: dying,
      durableName: 'group',
      filter: 'vdsm.VM.group-*',
      ackWaitMs: 500,
      onAlert: async (alert) => {
        countA += 1;
        // Member A dies while holding its 50th alert: it never finishes handling it.
        if (countA === 50) {
          await dying.close();
          throw new Error('member A died');
        }
        handled.push({ ...alert, by: 'a' });
      },
    });
    const b = await startManager({ nats: server.url, durableName: 'group', filter: 'vdsm.VM.group-*', ackWaitMs: 500, onAlert: (alert) => void handled.push({ ...alert, by: 'b' }) });
    await seedStream(nc, 5, 100, undefined, 'group');
    await until(handled, 500);
    await b.stop();
    await a.stop().catch(() => undefined);
    expectInOrderOnce(handled, 500, 100);
    expect(countA).toBeGreaterThanOrEqual(50);
    expect(handled.filter((alert) => alert.by === 'b').length).toBeGreaterThan(0);
  });

  it('lets a member that starts late catch up from history before going live', async () => {
    await seedStream(nc, 3, 100, undefined, 'late');
    const handled: ManagedAlert[] = [];
    const late = await startManager({ nats: server.url, durableName: 'late', filter: 'vdsm.VM.late-*', onAlert: (alert) => void handled.push(alert) });
    await until(handled, 300);
    await seedStream(nc, 3, 100, undefined, 'late-live');
    await late.stop();
    const widened = await startManager({ nats: server.url, durableName: 'late', filter: 'vdsm.VM.late*', onAlert: (alert) => void handled.push(alert) });
    await until(handled, 600);
    await widened.stop();
    expect(handled.slice(0, 300).every((alert) => alert.alertName.startsWith('vdsm.VM.late-') && !alert.alertName.includes('live'))).toBe(true);
    expect(new Set(handled.map((alert) => alert.seq)).size).toBe(600);
  });

  it('refuses a durable name NATS cannot hold', async () => {
    await expect(startManager({ nats: server.url, durableName: 'a.b', filter: 'vdsm.VM.*', onAlert: () => undefined })).rejects.toThrow(/durableName "a.b" may hold only/);
  });
});
