// The errors a client sees: nothing in time, the connection gone, or the agent's JSON-RPC error.
import type { ErrorCode } from '../domain/errors.ts';

/** Nothing matching arrived in time: poll with getInfo, as the seed's loop does. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** The connection to the agent is gone; `waitForReconnect()` then `getInfo` to double check. */
export class DisconnectedError extends Error {
  override name = 'DisconnectedError';
}

/** The agent answered with a JSON-RPC error. */
export class RpcError extends Error {
  override name = 'RpcError';
  constructor(
    readonly code: ErrorCode | number,
    message: string,
    readonly data?: unknown,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
