// Where the API listens on the bus. Clients need these names, not the agent that serves them.

/** JSON-RPC requests from operators (managers): every method. */
export const API_SUBJECT = 'opstream.api';
/** JSON-RPC requests from viewers: read methods only. */
export const READ_API_SUBJECT = 'opstream.read';
