// Records what a feed delivers, and waits for an alert that satisfies a predicate.
import type { NatsConnection } from '@nats-io/transport-node';
import { compileFilter, type FilterType } from '../../src/filters/alert-filter.ts';
import { openAlertFeed, type AlertFeed, type FeedAlert } from '../../src/subscriptions/alert-feed.ts';

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
  const alerts: FeedAlert[] = [];
  const waiters = new Set<() => void>();
  const feed: AlertFeed = await openAlertFeed(nc, { stream, filter: compileFilter(filter, filterType) }, (alert) => {
    alerts.push(alert);
    for (const wake of waiters) wake();
  });
  return {
    alerts,
    until(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = alerts.find(predicate);
          if (!found) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no matching alert within ${timeoutMs} ms; saw ${alerts.map((a) => `${a.alert.alertName}:${a.alert.status}`).join(', ')}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    stop: () => feed.stop(),
  };
}
