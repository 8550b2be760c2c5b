// Waits on an entity's alerts through a real feed, for tests of any subsystem.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Alert } from '../../src/domain/alert.ts';
import { isOperationComplete } from '../../src/domain/operation-info.ts';
import { recordAlerts, type AlertRecorder } from './alerts.ts';

export type EntityWatch = {
  alerts(): Alert[];
  /** The first settled alert (stage n = total) with `status` after `afterSeq`, in order. */
  until(status: string, afterSeq?: number, timeoutMs?: number): Promise<{ seq: number; alert: Alert }>;
  stop(): Promise<void>;
};

export async function watchEntity(nc: NatsConnection, alertName: string): Promise<EntityWatch> {
  const recorder: AlertRecorder = await recordAlerts(nc, 'VDSM', alertName);
  return {
    alerts: () => recorder.alerts.map(({ alert }) => alert),
    until: (status, afterSeq = 0, timeoutMs = 20_000) =>
      recorder.until(({ seq, alert }) => seq > afterSeq && alert.status === status && isOperationComplete(alert.operationInfo), timeoutMs),
    stop: () => recorder.stop(),
  };
}
