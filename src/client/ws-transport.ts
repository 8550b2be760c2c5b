// JSON-RPC over WebSocket, reconnecting with backoff when the connection drops.
import { setTimeout as sleep } from 'node:timers/promises';
import { JSONRPCClient, JSONRPCErrorException, JSONRPCServer, JSONRPCServerAndClient } from 'json-rpc-2.0';
import WebSocket from 'ws';
import { AlertNotification } from '../domain/alert.ts';
import type { FilterType } from '../filters/alert-filter.ts';
import { ErrorCodes } from '../domain/errors.ts';
import { DisconnectedError, RpcError } from './errors.ts';
import type { Transport } from './transport.ts';

export type WebSocketOptions = {
  /** Reconnect after a drop (default true); waitForReconnect() then resolves once it is back. */
  reconnect?: boolean;
  /** How long a call may wait for its answer. */
  callTimeoutMs?: number;
  /** The bearer token the agent gave this client's role (data/credentials/operator.token or viewer.token). */
  token?: string;
  /** PEM of the CA that signed a wss:// agent's certificate, when the system does not trust it. */
  ca?: string;
};

/** json-rpc-2.0 reports its own request timeout with code 0, which no agent sends. */
const CALL_TIMED_OUT = 0;

export class WebSocketTransport implements Transport {
  onAlert: Transport['onAlert'] = () => undefined;
  onStatus: Transport['onStatus'] = () => undefined;
  readonly resubscribesAfterReconnect = true;
  #socket: WebSocket;
  #peer: JSONRPCServerAndClient;
  #closing = false;

  private constructor(
    private readonly url: string,
    socket: WebSocket,
    private readonly options: WebSocketOptions,
  ) {
    this.#socket = socket;
    this.#peer = this.#attach(socket);
  }

  static async open(url: string, options: WebSocketOptions = {}): Promise<WebSocketTransport> {
    return new WebSocketTransport(url, await openSocket(url, options), options);
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
      const parsed = AlertNotification.safeParse(params);
      if (parsed.success) this.onAlert(parsed.data);
    });
    const peer = new JSONRPCServerAndClient(
      server,
      new JSONRPCClient((request) => {
        if (socket.readyState !== WebSocket.OPEN) throw new DisconnectedError(`not connected to ${this.url}`);
        socket.send(JSON.stringify(request));
      }),
    );
    socket.on('message', (data) => {
      void peer.receiveAndSend(JSON.parse(data.toString())).catch(() => undefined);
    });
    socket.once('close', () => {
      peer.rejectAllPendingRequests('the connection to the agent closed');
      if (this.#closing) return;
      this.onStatus('disconnected');
      if (this.options.reconnect ?? true) void this.#reconnect();
    });
    socket.on('error', () => undefined);
    return peer;
  }

  async #reconnect(): Promise<void> {
    for (let attempt = 0; !this.#closing; attempt += 1) {
      await sleep(Math.min(2_000, 50 * 2 ** Math.min(attempt, 6)));
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
