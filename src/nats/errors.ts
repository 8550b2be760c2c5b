// Which NATS and JetStream failures mean "not reachable now" (the call's outcome unknown, 105).
import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';

/** JetStream's own words for "no leader right now": the API answers 503 while a cluster elects. */
const TEMPORARILY_UNAVAILABLE = 503;

/**
 * Whether a failure means "the server or stream is not reachable now" — the call's outcome is
 * unknown and a retry later may work — rather than a bug or a bad request. A cluster between
 * stream leaders says so in several ways: nobody answers the JetStream API (nats.js reports that
 * as "jetstream is not enabled", a class it does not export), or the API answers 503.
 */
export function isUnreachable(error: unknown): boolean {
  return (
    error instanceof errors.TimeoutError ||
    error instanceof errors.RequestError ||
    error instanceof errors.NoRespondersError ||
    error instanceof errors.ClosedConnectionError ||
    error instanceof errors.DrainingConnectionError ||
    error instanceof errors.ConnectionError ||
    error instanceof JetStreamError ||
    (error instanceof JetStreamApiError && error.status === TEMPORARILY_UNAVAILABLE) ||
    (error instanceof Error && error.name === 'JetStreamNotEnabled')
  );
}

/**
 * Runs `attempt` until it succeeds, retrying what isUnreachable says may work later: an agent
 * starting beside a cluster that is still electing leaders (or creating a replicated stream or
 * bucket, which takes seconds on a busy machine) waits for it instead of exiting.
 */
export async function untilReachable<T>(what: string, attempt: () => Promise<T>, { tries = 6, waitMs = 1_000, onRetry }: { tries?: number; waitMs?: number; onRetry?: (error: unknown) => void } = {}): Promise<T> {
  for (let tried = 1; ; tried += 1) {
    try {
      return await attempt();
    } catch (error) {
      if (!isUnreachable(error) || tried >= tries) throw new Error(`${what}: ${String(error)}`, { cause: error });
      onRetry?.(error);
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}
