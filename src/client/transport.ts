// How a client reaches an agent — WebSocket JSON-RPC or request/reply on the bus — behind one interface.
import type { AlertNotification } from '../domain/alert.ts';
import type { FilterType } from '../filters/alert-filter.ts';

/** How a client reaches an agent: WebSocket JSON-RPC, or request/reply on the NATS bus. */
export interface Transport {
  /** Every alert any subscription delivers goes here. */
  onAlert: (alert: AlertNotification) => void;
  /**
   * Connection changes; after `reconnected`, subscriptions that did not survive are redone;
   * `gave-up` when the retry policy has no reconnect attempts left.
   */
  onStatus: (status: 'disconnected' | 'reconnected' | 'gave-up') => void;
  /** Something arrived that cannot be an alert or a reply: said, never dropped silently. */
  onMalformed: (reason: string) => void;
  /** The agent ended a subscription on its own (its feed died): the client resubscribes. */
  onSubscriptionEnded: (id: string, reason: string) => void;
  /** Whether subscriptions die with the connection (WebSocket) or survive it (NATS). */
  readonly resubscribesAfterReconnect: boolean;
  readonly connected: boolean;
  /** Throws RpcError for an API error, DisconnectedError when the agent cannot be reached. */
  call<Result>(method: string, params: Record<string, unknown>): Promise<Result>;
  /** Delivers matching alerts after `since` (default: from now); `seq` is where it starts after. */
  subscribe(filter: string, filterType: FilterType, since: number | undefined): Promise<{ id: string; seq: number }>;
  unsubscribe(id: string): Promise<void>;
  close(): Promise<void>;
}
