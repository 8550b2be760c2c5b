// JSON-RPC over WebSocket: reconnects after a drop as its retry policy says, and pings the agent
// so that a half-open connection (the peer gone without a close) is noticed and replaced.
import { setTimeout as sleep } from 'node:timers/promises';
import { JSONRPCClient, JSONRPCErrorException, JSONRPCServer, JSONRPCServerAndClient } from 'json-rpc-2.0';
import WebSocket from 'ws';
import { retryDelayMs, retryPolicy, type RetryPolicy, type RetryPolicyInput } from '../domain/retry-policy.ts';
import type { FilterType } from '../filters/alert-filter.ts';
import { ErrorCodes } from '../domain/errors.ts';
import { DisconnectedError, RpcError } from './errors.ts';
import { readNotification } from './notification.ts';
import type { Transport } from './transport.ts';

export type WebSocketOptions = {
  /** Reconnect after a drop (default true); waitForReconnect() then resolves once it is back. */
  reconnect?: boolean;
  /** How long a call may wait for its answer. */
  callTimeoutMs?: number;
  /** Backoff between reconnect attempts and between resubscribe attempts (defaults: 50 ms doubling to 2 s, forever). */
  retry?: RetryPolicyInput;
  /**
   * How often to ping the agent (default 15 s; 0 = never). A connection that answers neither a
   * ping nor anything else within one interval is cut and reconnected.
   */
  pingIntervalMs?: number;
  /** The bearer token the agent gave this client's role (data/credentials/operator.token or viewer.token). */
  token?: string;
  /** PEM of the CA that signed a wss:// agent's certificate, when the system does not trust it. */
  ca?: string;
};

/** json-rpc-2.0 reports its own request timeout with code 0, which no agent sends. */
const CALL_TIMED_OUT = 0;
const DEFAULT_PING_INTERVAL_MS = 15_000;

export class WebSocketTransport implements Transport {
  onAlert: Transport['onAlert'] = () => undefined;
  onStatus: Transport['onStatus'] = () => undefined;
  onMalformed: Transport['onMalformed'] = () => undefined;
  onSubscriptionEnded: Transport['onSubscriptionEnded'] = () => undefined;
  readonly resubscribesAfterReconnect = true;
  readonly retry: RetryPolicy;
  #socket: WebSocket;
  #peer: JSONRPCServerAndClient;
  #closing = false;

  private constructor(
    private readonly url: string,
    socket: WebSocket,
    private readonly options: WebSocketOptions,
    retry: RetryPolicy,
  ) {
    this.retry = retry;
    this.#socket = socket;
    this.#peer = this.#attach(socket);
  }

  static async open(url: string, options: WebSocketOptions = {}): Promise<WebSocketTransport> {
    const retry = retryPolicy(options.retry);
    const pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    if (!Number.isInteger(pingIntervalMs) || pingIntervalMs < 0) {
      throw new RangeError(`pingIntervalMs must be a whole number of milliseconds, 0 or more (got ${pingIntervalMs})`);
    }
    return new WebSocketTransport(url, await openSocket(url, options), options, retry);
  }

  get connected(): boolean {
    return this.#socket.readyState === WebSocket.OPEN;
  }

  async call<Result>(method: string, params: Record<string, unknown>): Promise<Result> {
    if (!this.connected) throw new DisconnectedError(`not connected to ${this.url}`);
    const timeoutMs = this.options.callTimeoutMs ?? 30_000;
    try {
      return (await this.#peer.timeout(timeoutMs).request(method, params)) as Result;
    } catch (error) {
      if (error instanceof JSONRPCErrorException && error.code !== CALL_TIMED_OUT) {
        throw new RpcError(error.code, error.message, error.data, { cause: error });
      }
      const why = error instanceof JSONRPCErrorException ? `no answer within ${timeoutMs} ms` : (error as Error).message;
      throw new DisconnectedError(`${method}: ${why}`, { cause: error });
    }
  }

  async subscribe(filter: string, filterType: FilterType, since: number | undefined): Promise<{ id: string; seq: number }> {
    const params = since === undefined ? { filter, filterType } : { filter, filterType, since };
    const { subscriptionId, seq } = await this.call<{ subscriptionId: string; seq: number }>('Host.subscribe', params);
    return { id: subscriptionId, seq };
  }

  async unsubscribe(id: string): Promise<void> {
    await this.call('Host.unsubscribe', { subscriptionId: id });
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.#socket.once('close', () => resolve());
      this.#socket.close();
    });
  }

  /** Cuts the connection as a network failure would (tests of reconnection use it). */
  dropConnection(): void {
    this.#socket.terminate();
  }

  #attach(socket: WebSocket): JSONRPCServerAndClient {
    const server = new JSONRPCServer();
    server.addMethod('alert', (params) => {
      const reading = readNotification(params);
      if (reading.ok) this.onAlert(reading.alert);
      else this.onMalformed(`alert notification: ${reading.reason}`);
    });
    server.addMethod('subscriptionEnded', (params) => {
      const { subscriptionId, reason } = (params ?? {}) as { subscriptionId?: unknown; reason?: unknown };
      if (typeof subscriptionId === 'string') this.onSubscriptionEnded(subscriptionId, String(reason ?? 'no reason given'));
      else this.onMalformed('subscriptionEnded notification without a subscriptionId');
    });
    const peer = new JSONRPCServerAndClient(
      server,
      new JSONRPCClient((request) => {
        if (socket.readyState !== WebSocket.OPEN) throw new DisconnectedError(`not connected to ${this.url}`);
        socket.send(JSON.stringify(request));
      }),
    );
    const heartbeat = this.#heartbeat(socket);
    socket.on('message', (data) => {
      heartbeat.alive();
      let message: unknown;
      try {
        message = JSON.parse(data.toString());
      } catch (error) {
        this.onMalformed(`a frame that is not JSON: ${(error as Error).message}`);
        return;
      }
      peer.receiveAndSend(message).catch((error: unknown) => this.onMalformed(`a message json-rpc-2.0 refused: ${String(error)}`));
    });
    socket.once('close', () => {
      heartbeat.stop();
      peer.rejectAllPendingRequests('the connection to the agent closed');
      if (this.#closing) return;
      this.onStatus('disconnected');
      if (this.options.reconnect ?? true) void this.#reconnect();
    });
    socket.on('error', () => undefined);
    return peer;
  }

  /**
   * Pings every interval; a connection from which nothing (pong, reply or notification) arrived
   * since the previous ping is dead, though the OS may not know it for minutes: terminate it, and
   * the close handler reconnects.
   */
  #heartbeat(socket: WebSocket): { alive(): void; stop(): void } {
    const intervalMs = this.options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    let heard = true;
    const alive = () => {
      heard = true;
    };
    if (intervalMs === 0) return { alive, stop: () => undefined };
    socket.on('pong', alive);
    socket.on('ping', alive);
    const timer = setInterval(() => {
      if (!heard) {
        socket.terminate();
        return;
      }
      heard = false;
      if (socket.readyState === WebSocket.OPEN) socket.ping();
    }, intervalMs);
    timer.unref();
    return { alive, stop: () => clearInterval(timer) };
  }

  async #reconnect(): Promise<void> {
    for (let retry = 1; !this.#closing; retry += 1) {
      const delay = retryDelayMs(this.retry, retry);
      if (delay === undefined) {
        this.onStatus('gave-up');
        return;
      }
      await sleep(delay);
      try {
        const socket = await openSocket(this.url, this.options);
        if (this.#closing) {
          socket.close();
          return;
        }
        this.#socket = socket;
        this.#peer = this.#attach(socket);
        this.onStatus('reconnected');
        return;
      } catch {
        // still away: try again
      }
    }
  }
}

function openSocket(url: string, { token, ca }: WebSocketOptions): Promise<WebSocket> {
  const socket = new WebSocket(url, { ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}), ...(ca ? { ca } : {}) });
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    // A refused upgrade (401 no or wrong token, 403 origin) is final: say so rather than "cannot connect".
    socket.once('unexpected-response', (_request, response) => {
      socket.terminate();
      const why = response.statusCode === 401 ? 'the agent wants a valid bearer token (token option)' : `the agent refused the connection (HTTP ${response.statusCode})`;
      reject(new RpcError(ErrorCodes.Forbidden, `${url}: ${why}`));
    });
    socket.once('error', (error) => reject(new DisconnectedError(`cannot connect to ${url}: ${error.message}`, { cause: error })));
  });
}
