// The API over the NATS bus: JSON-RPC requests to `opstream.api`, alerts straight from the
// stream through ordered consumers — which survive reconnects on their own.
import { randomUUID } from 'node:crypto';
import { errors, type NatsConnection } from '@nats-io/transport-node';
import { alertNotification } from '../domain/alert.ts';
import { API_SUBJECT, READ_API_SUBJECT } from '../domain/api-subjects.ts';
import { DEFAULT_STREAM } from '../nats/alert-stream.ts';
import { compileFilter, type FilterType } from '../filters/alert-filter.ts';
import { openAlertFeed, type AlertFeed } from '../subscriptions/alert-feed.ts';
import { DisconnectedError, RpcError } from './errors.ts';
import type { Transport } from './transport.ts';

type JsonRpcReply = { result?: unknown; error?: { code: number; message: string; data?: unknown } };

export class NatsTransport implements Transport {
  onAlert: Transport['onAlert'] = () => undefined;
  onStatus: Transport['onStatus'] = () => undefined;
  onMalformed: Transport['onMalformed'] = () => undefined;
  onSubscriptionEnded: Transport['onSubscriptionEnded'] = () => undefined;
  readonly resubscribesAfterReconnect = false;
  readonly #feeds = new Map<string, AlertFeed>();
  #connected = true;
  #nextId = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: { stream?: string; callTimeoutMs?: number; ownsConnection?: boolean; role?: 'operator' | 'viewer' } = {},
  ) {
    void this.#watchStatus();
  }

  get connected(): boolean {
    return this.#connected && !this.nc.isClosed();
  }

  async call<Result>(method: string, params: Record<string, unknown>): Promise<Result> {
    this.#nextId += 1;
    const request = JSON.stringify({ jsonrpc: '2.0', id: this.#nextId, method, params });
    let reply: JsonRpcReply;
    try {
      const subject = this.options.role === 'viewer' ? READ_API_SUBJECT : API_SUBJECT;
      const message = await this.nc.request(subject, request, { timeout: this.options.callTimeoutMs ?? 30_000 });
      reply = message.json<JsonRpcReply>();
    } catch (error) {
      const why = error instanceof errors.NoRespondersError || (error as { cause?: unknown }).cause instanceof errors.NoRespondersError
        ? `no agent answers on ${this.options.role === 'viewer' ? READ_API_SUBJECT : API_SUBJECT}`
        : (error as Error).message;
      throw new DisconnectedError(`${method}: ${why}`, { cause: error });
    }
    if (reply.error) throw new RpcError(reply.error.code, reply.error.message, reply.error.data);
    return reply.result as Result;
  }

  async subscribe(filter: string, filterType: FilterType, since: number | undefined): Promise<{ id: string; seq: number }> {
    const compiled = compileFilter(filter, filterType);
    const feed = await openAlertFeed(this.nc, { stream: this.options.stream ?? DEFAULT_STREAM, filter: compiled, after: since }, ({ seq, alert }) =>
      this.onAlert(alertNotification(alert, seq)),
    );
    const id = randomUUID();
    this.#feeds.set(id, feed);
    return { id, seq: feed.startedAfter };
  }

  async unsubscribe(id: string): Promise<void> {
    await this.#feeds.get(id)?.stop();
    this.#feeds.delete(id);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#feeds.values()].map((feed) => feed.stop()));
    this.#feeds.clear();
    if (this.options.ownsConnection) await this.nc.drain();
  }

  async #watchStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') {
        this.#connected = false;
        this.onStatus('disconnected');
      } else if (status.type === 'reconnect') {
        this.#connected = true;
        this.onStatus('reconnected');
      }
    }
  }
}
