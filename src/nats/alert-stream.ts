// The one stream of alerts (`vdsm.>`), created or brought up to date on every start.
import { jetstreamManager, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ALERT_ROOT } from '../domain/subjects.ts';

export const DEFAULT_STREAM = 'VDSM';

export type AlertStreamOptions = {
  name?: string;
  /** 3 on a 3-node cluster, so an acknowledged alert survives a lost machine. */
  replicas?: number;
};

/**
 * Creates the alert stream, or updates it to this configuration: safe to call on every start.
 * It captures `<root>.>` only, so request/reply API subjects can never land in it.
 */
export async function ensureAlertStream(nc: NatsConnection, options: AlertStreamOptions = {}): Promise<string> {
  const jsm = await jetstreamManager(nc);
  const name = options.name ?? DEFAULT_STREAM;
  const config: Partial<StreamConfig> & { name: string } = {
    name,
    subjects: [`${ALERT_ROOT}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    num_replicas: options.replicas ?? 1,
    max_msg_size: 256 * 1024,
    duplicate_window: 2 * 60 * 1_000_000_000,
    allow_direct: true,
  };
  try {
    await jsm.streams.add(config);
  } catch (error) {
    // "stream name already in use" (10058) with another config: bring it up to date instead.
    if ((error as { code?: number }).code !== 10058) throw error;
    await jsm.streams.update(name, config);
  }
  return name;
}
