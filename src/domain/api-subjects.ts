// Where the API listens on the bus. Clients need these names, not the agent that serves them, so
// they live in the domain, not beside the server.

/** JSON-RPC requests from operators (managers): every method. */
export const API_SUBJECT = 'opstream.api';
/** JSON-RPC requests from viewers: read methods only. */
export const READ_API_SUBJECT = 'opstream.read';

/** Queue group the agents answer in, so several can serve the same bus. */
export const API_QUEUE_GROUP = 'opstream-agents';
