/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// JSON-RPC 2.0 over the agent's public WebSocket, as any browser client would speak it: calls with
// ids, `alert` notifications, and reconnection with backoff. `onOpen` runs after every
// (re)connection so the page can resubscribe with `since` before it trusts the feed again.

export type ConnectionState = 'connecting' | 'open' | 'closed';

export type AlertParams = {
  alertName: string;
  seq: number;
  operationInfo: OperationInfo;
};

export type OperationInfo = {
  operationDescription: string;
  stageDescription: string;
  stage: [number, number];
  percentage: number;
  lastError: [number, string];
  extraData: Record<string, unknown>;
};

export class RpcError extends Error {
  override name = 'RpcError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type Pending = { resolve(value: unknown): void; reject(error: Error): void };

export type RpcHandlers = {
  onAlert(params: AlertParams): void;
  onOpen(): Promise<void>;
  onState(state: ConnectionState, detail?: string): void;
};

/** The /rpc URL of the agent that served this page, with the page's own `token`, if any. */
export function rpcUrl(location: Location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = new URLSearchParams(location.search).get('token');
  return `${scheme}//${location.host}/rpc${token ? `?token=${encodeURIComponent(token)}` : ''}`;
}

export class RpcClient {
  #socket: WebSocket | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #delay = 250;
  #closed = false;

  constructor(
    private readonly url: string,
    private readonly handlers: RpcHandlers,
  ) {
    this.#connect();
  }

  get isOpen(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return Promise.reject(new RpcError(-1, 'not connected to the agent'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  close(): void {
    this.#closed = true;
    this.#socket?.close();
  }

  #connect(): void {
    this.handlers.onState('connecting');
    const socket = new WebSocket(this.url);
    this.#socket = socket;
    socket.onopen = () => {
      this.#delay = 250;
      this.handlers.onOpen().then(
        () => this.handlers.onState('open'),
        (error: unknown) => {
          // The page could not catch up on this connection: drop it and try again.
          this.handlers.onState('closed', String((error as Error).message ?? error));
          socket.close();
        },
      );
    };
    socket.onmessage = (message) => this.#receive(String(message.data));
    socket.onclose = () => {
      for (const pending of this.#pending.values()) pending.reject(new RpcError(-1, 'the connection to the agent closed'));
      this.#pending.clear();
      if (this.#closed) return;
      this.handlers.onState('closed', 'reconnecting');
      setTimeout(() => this.#connect(), this.#delay);
      this.#delay = Math.min(this.#delay * 2, 4000);
    };
  }

  #receive(text: string): void {
    let message: { id?: number; method?: string; params?: unknown; result?: unknown; error?: { code: number; message: string } };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return;
    }
    if (message.method === 'alert') {
      this.handlers.onAlert(message.params as AlertParams);
      return;
    }
    if (typeof message.id !== 'number') return;
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    if (message.error) pending.reject(new RpcError(message.error.code, message.error.message));
    else pending.resolve(message.result);
  }
}
