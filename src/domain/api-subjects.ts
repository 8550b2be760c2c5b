// Where the JSON-RPC API answers on the NATS bus. Both sides need these names — the agent serves
// them, the bus client calls them — so they live in the domain, not beside the server.

/** Request/reply subject of the API; outside `vdsm.>`, so the alert stream never captures it. */
export const API_SUBJECT = 'opstream.api';

/** Queue group the agents answer in, so several can serve the same bus. */
export const API_QUEUE_GROUP = 'opstream-agents';
