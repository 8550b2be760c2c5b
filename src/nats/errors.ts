import { JetStreamError } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';

/**
 * Whether a failure means "the server or stream is not reachable now" — the call's outcome is
 * unknown and a retry later may work — rather than a bug or a bad request.
 */
export function isUnreachable(error: unknown): boolean {
  return (
    error instanceof errors.TimeoutError ||
    error instanceof errors.RequestError ||
    error instanceof errors.NoRespondersError ||
    error instanceof errors.ClosedConnectionError ||
    error instanceof errors.DrainingConnectionError ||
    error instanceof errors.ConnectionError ||
    error instanceof JetStreamError
  );
}
