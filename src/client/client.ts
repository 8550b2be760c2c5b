// The client library over WebSocket JSON-RPC: typed calls, subscriptions, and waitForEvent in
// the spirit of the seed's client loop.
import { JSONRPCClient, JSONRPCErrorException, JSONRPCServer, JSONRPCServerAndClient } from 'json-rpc-2.0';
import WebSocket from 'ws';
import { AlertNotification } from '../domain/alert.ts';
import type { ReceivedOperationInfo } from '../domain/operation-info.ts';
import type { TaskInfo } from '../domain/task.ts';
import { compileFilter, type FilterType } from '../filters/alert-filter.ts';
import { DisconnectedError, RpcError } from './errors.ts';
import { AlertInbox } from './inbox.ts';

export type VmInfo = {
  vmId: string;
  status: string;
  operationInfo: ReceivedOperationInfo;
  task: TaskInfo | null;
  /** Stream sequence of the VM's last alert. */
  seq: number;
};

export type TaskRef = { taskId: string };

export type OpstreamClient = {
  /** Any API method by name; the typed helpers below call this. */
  call<Result = unknown>(method: string, params?: Record<string, unknown>): Promise<Result>;
  vm: {
    create(vmId: string, definition?: Record<string, unknown>): Promise<TaskRef>;
    pause(vmId: string): Promise<TaskRef>;
    cont(vmId: string): Promise<TaskRef>;
    migrate(vmId: string, dstHost: string): Promise<TaskRef>;
    destroy(vmId: string): Promise<TaskRef>;
    getInfo(vmId: string): Promise<VmInfo>;
  };
  /** Subscribes (once per filter) so that waitForEvent sees the filter's alerts from now on. */
  subscribe(filter: string, filterType?: FilterType): Promise<string>;
  unsubscribe(subscriptionId: string): Promise<void>;
  /**
   * The next alert whose name matches `filter` (glob or regexp; one entity or many). Alerts that
   * arrived since the subscription and were not taken yet count: none is missed between calls.
   * Rejects with TimeoutError after `timeoutMs`, DisconnectedError if the connection drops.
   */
  waitForEvent(filter: string, timeoutMs: number, filterType?: FilterType): Promise<AlertNotification>;
  close(): Promise<void>;
};

/**
 * Connects to an agent's JSON-RPC endpoint.
 *
 * @example
 * const host = await connect('ws://127.0.0.1:4040/rpc');
 * await host.subscribe('vdsm.VM.best_vm');
 * await host.vm.pause('best_vm');
 * const event = await host.waitForEvent('vdsm.VM.best_vm', 10_000);
 */
export async function connect(url: string): Promise<OpstreamClient> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', (error) => reject(new DisconnectedError(`cannot connect to ${url}: ${error.message}`, { cause: error })));
  });
  return new WebSocketClient(socket);
}

class WebSocketClient implements OpstreamClient {
  readonly #peer: JSONRPCServerAndClient;
  readonly #inbox = new AlertInbox();
  readonly #subscriptions = new Map<string, Promise<string>>();

  constructor(private readonly socket: WebSocket) {
    const server = new JSONRPCServer();
    server.addMethod('alert', (params) => {
      const parsed = AlertNotification.safeParse(params);
      if (parsed.success) this.#inbox.put(parsed.data);
    });
    this.#peer = new JSONRPCServerAndClient(
      server,
      new JSONRPCClient((request) => {
        if (socket.readyState !== WebSocket.OPEN) throw new DisconnectedError('the connection to the agent is closed');
        socket.send(JSON.stringify(request));
      }),
    );
    socket.on('message', (data) => {
      void this.#peer.receiveAndSend(JSON.parse(data.toString())).catch(() => undefined);
    });
    socket.on('close', () => {
      this.#peer.rejectAllPendingRequests('the connection to the agent closed');
      this.#inbox.rejectWaiters(new DisconnectedError('the connection to the agent closed'));
    });
  }

  async call<Result = unknown>(method: string, params: Record<string, unknown> = {}): Promise<Result> {
    try {
      return (await this.#peer.request(method, params)) as Result;
    } catch (error) {
      if (error instanceof JSONRPCErrorException) throw new RpcError(error.code, error.message, error.data, { cause: error });
      if (error instanceof DisconnectedError) throw error;
      throw new DisconnectedError((error as Error).message, { cause: error });
    }
  }

  readonly vm: OpstreamClient['vm'] = {
    create: (vmId, definition = {}) => this.call('VM.create', { ...definition, vmId }),
    pause: (vmId) => this.call('VM.pause', { vmId }),
    cont: (vmId) => this.call('VM.cont', { vmId }),
    migrate: (vmId, dstHost) => this.call('VM.migrate', { vmId, dstHost }),
    destroy: (vmId) => this.call('VM.destroy', { vmId }),
    getInfo: (vmId) => this.call('VM.getInfo', { vmId }),
  };

  subscribe(filter: string, filterType: FilterType = 'glob'): Promise<string> {
    const key = `${filterType}:${filter}`;
    let subscription = this.#subscriptions.get(key);
    if (!subscription) {
      subscription = this.call<{ subscriptionId: string }>('Host.subscribe', { filter, filterType }).then(
        ({ subscriptionId }) => subscriptionId,
      );
      this.#subscriptions.set(key, subscription);
      subscription.catch(() => this.#subscriptions.delete(key));
    }
    return subscription;
  }

  async unsubscribe(subscriptionId: string): Promise<void> {
    await this.call('Host.unsubscribe', { subscriptionId });
    for (const [key, id] of this.#subscriptions) if ((await id) === subscriptionId) this.#subscriptions.delete(key);
  }

  async waitForEvent(filter: string, timeoutMs: number, filterType: FilterType = 'glob'): Promise<AlertNotification> {
    const compiled = compileFilter(filter, filterType);
    await this.subscribe(filter, filterType);
    return this.#inbox.take(compiled, timeoutMs);
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}
