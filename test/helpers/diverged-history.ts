// Puts a history on the stream that today's VM machine does not reproduce: the recorded VM
// lifecycle (test/fixtures/histories) under a new name, with its PAUSE recorded as going straight
// to Paused — what a machine changed without a version bump would have left behind.
import { readFileSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { SEAL_HEADER, type HistorySeal } from '../../src/security/history-seal.ts';
import type { HistoryFile } from '../../src/replay/history.ts';

const FIXTURE = new URL('../fixtures/histories/vm-lifecycle.json', import.meta.url);

/**
 * Publishes the history as `vdsm.VM.<vmId>`, sealed with the agent's key as the agent would have
 * (the divergence must be the machine's, not a forgery); resolves with the diverging alert's seq.
 */
export async function publishDivergedHistory(nc: NatsConnection, vmId: string, seal?: HistorySeal): Promise<number> {
  const history = JSON.parse(readFileSync(FIXTURE, 'utf8')) as HistoryFile;
  const alertName = `vdsm.VM.${vmId}`;
  const js = jetstream(nc);
  let divergedAt = 0;
  for (const { alert } of history.alerts) {
    const changed = alert.event.type === 'PAUSE' ? { ...alert, state: 'Paused' } : alert;
    const body = JSON.stringify({ ...changed, alertName });
    const sealed = seal ? headers() : undefined;
    sealed?.set(SEAL_HEADER, seal?.seal(alertName, body) ?? '');
    const ack = await js.publish(alertName, body, { headers: sealed });
    if (changed !== alert && divergedAt === 0) divergedAt = ack.seq;
  }
  return divergedAt;
}
