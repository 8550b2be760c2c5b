// Records what a feed delivers, and waits for an alert that satisfies a predicate.
import type { NatsConnection } from '@nats-io/transport-node';
import { compileFilter, type FilterType } from '../../src/filters/alert-filter.ts';
import { openAlertFeed, type AlertFeed, type FeedAlert } from '../../src/subscriptions/alert-feed.ts';
import { Collected } from './collected.ts';

export type AlertRecorder = {
  readonly alerts: FeedAlert[];
  until(predicate: (alert: FeedAlert) => boolean, timeoutMs?: number): Promise<FeedAlert>;
  stop(): Promise<void>;
};

export async function recordAlerts(
  nc: NatsConnection,
  stream: string,
  filter: string,
  filterType: FilterType = 'glob',
): Promise<AlertRecorder> {
  const alerts = new Collected<FeedAlert>((seen) => `saw ${seen.map((a) => `${a.alert.alertName}:${a.alert.status}`).join(', ')}`);
  const feed: AlertFeed = await openAlertFeed(nc, { stream, filter: compileFilter(filter, filterType) }, (alert) => alerts.push(alert));
  return {
    alerts: alerts.items,
    until: (predicate, timeoutMs) => alerts.until(predicate, timeoutMs),
    stop: () => feed.stop(),
  };
}
