// Puts a history on the stream that today's VM machine does not reproduce: the recorded VM
// lifecycle (test/fixtures/histories) under a new name, with its PAUSE recorded as going straight
// to Paused — what a machine changed without a version bump would have left behind.
import { readFileSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { HistoryFile } from '../../src/replay/history.ts';

const FIXTURE = new URL('../fixtures/histories/vm-lifecycle.json', import.meta.url);

/** Publishes the history as `vdsm.VM.<vmId>`; resolves with the sequence of the diverging alert. */
export async function publishDivergedHistory(nc: NatsConnection, vmId: string): Promise<number> {
  const history = JSON.parse(readFileSync(FIXTURE, 'utf8')) as HistoryFile;
  const alertName = `vdsm.VM.${vmId}`;
  const js = jetstream(nc);
  let divergedAt = 0;
  for (const { alert } of history.alerts) {
    const changed = alert.event.type === 'PAUSE' ? { ...alert, state: 'Paused' } : alert;
    const ack = await js.publish(alertName, JSON.stringify({ ...changed, alertName }));
    if (changed !== alert && divergedAt === 0) divergedAt = ack.seq;
  }
  return divergedAt;
}
