// One bad message must not stall a manager group: a malformed alert, or one whose handler keeps
// failing, is set aside as a dead letter (recorded outside vdsm.>) and the group moves on.
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDeadLetters, startManager, type DeadLetter, type ManagedAlert } from '../src/index.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
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

async function until(list: unknown[], count: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (list.length < count) {
    if (Date.now() > deadline) throw new Error(`have ${list.length} of ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('a manager group and a message it cannot handle', () => {
  it('sets a malformed alert aside at once and handles the ones after it', async () => {
    const bad = await jetstream(nc).publish('vdsm.VM.dl-bad', 'this is not an alert');
    const count = await seedStream(nc, 1, 12, undefined, 'dl');
    const handled: ManagedAlert[] = [];
    const letters: DeadLetter[] = [];
    const manager = await startManager({
      nats: server.url,
      durableName: 'dl',
      filter: 'vdsm.VM.dl-*',
      onAlert: (alert) => void handled.push(alert),
      onDeadLetter: (letter) => void letters.push(letter),
    });
    try {
      await until(handled, count);
      expect(handled.every((alert) => alert.seq > bad.seq)).toBe(true);
      expect(letters).toEqual([expect.objectContaining({ seq: bad.seq, subject: 'vdsm.VM.dl-bad', deliveries: 1, reason: expect.stringMatching(/not JSON/) })]);
      expect(await listDeadLetters(nc, 'dl')).toEqual(letters);
      expect(manager.deadLettered).toBe(1);
    } finally {
      await manager.stop();
    }
  });

  it('sets aside an alert whose handler fails maxDeliver times, then goes on in order', async () => {
    const count = await seedStream(nc, 1, 12, undefined, 'poison');
    const attempts: number[] = [];
    const handled: number[] = [];
    const letters: DeadLetter[] = [];
    const manager = await startManager({
      nats: server.url,
      durableName: 'poison',
      filter: 'vdsm.VM.poison-*',
      maxDeliver: 2,
      onAlert: (alert) => {
        if (alert.revision === 3) {
          attempts.push(alert.seq);
          throw new Error('this handler cannot take revision 3');
        }
        handled.push(alert.revision);
      },
      onDeadLetter: (letter) => void letters.push(letter),
    });
    try {
      await until(handled, count - 1);
      expect(handled).toEqual(Array.from({ length: count }, (_, i) => i + 1).filter((revision) => revision !== 3));
      expect(attempts).toHaveLength(2);
      expect(letters).toEqual([expect.objectContaining({ seq: attempts[0], deliveries: 2, reason: expect.stringContaining('cannot take revision 3') })]);
    } finally {
      await manager.stop();
    }
  });

  it('says which stream it could not read instead of swallowing the error', async () => {
    await expect(startManager({ nats: nc, durableName: 'nostream', filter: 'vdsm.>', stream: 'NO_SUCH_STREAM', onAlert: () => undefined })).rejects.toThrow(
      /stream NO_SUCH_STREAM/,
    );
  });

  it('refuses a maxDeliver that is not a whole number from 1 to 1000', async () => {
    await expect(startManager({ nats: nc, durableName: 'bad', filter: 'vdsm.>', maxDeliver: 0, onAlert: () => undefined })).rejects.toThrow(/maxDeliver must be/);
  });
});
