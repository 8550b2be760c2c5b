/**
 * Every failure the API can report. JSON-RPC's own codes keep the spec's values; the
 * application codes are ours and stable, so clients may switch on them.
 */
export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  NoSuchEntity: 100,
  InvalidTransition: 101,
  Conflict: 102,
  InvalidFilter: 103,
  NoSuchSubscription: 104,
  Unavailable: 105,
  LimitExceeded: 106,
  PayloadTooLarge: 107,
  EntityDiverged: 108,
  Forbidden: 109,
  JobExists: 120,
  JobNotActive: 121,
  JobNotDone: 122,
  CancelRefused: 123,
  NoSuchJob: 124,
} as const;
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** A failure with a code a client can act on and a message that names what was wrong. */
export class OpstreamError extends Error {
  override name = 'OpstreamError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly data?: Record<string, unknown>,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A call reached an agent that does not own the entity: the API forwards it to `hostId`'s agent,
 * and says Unavailable only when it cannot.
 */
export class OwnedElsewhereError extends OpstreamError {
  override name = 'OwnedElsewhereError';
  constructor(
    readonly hostId: string,
    message: string,
  ) {
    super(ErrorCodes.Unavailable, `${message}; its agent could not be reached`, { hostId });
  }
}

export function isOpstreamError(error: unknown, code?: ErrorCode): error is OpstreamError {
  return error instanceof OpstreamError && (code === undefined || error.code === code);
}

export const isConflict = (error: unknown): error is OpstreamError => isOpstreamError(error, ErrorCodes.Conflict);
