// The client library: typed calls, subscriptions that survive reconnects, and waitForEvent in
// the spirit of the seed's client loop — over WebSocket JSON-RPC or directly over NATS.
import type { NatsConnection } from '@nats-io/transport-node';
import type { AlertNotification } from '../domain/alert.ts';
import type { ReceivedOperationInfo } from '../domain/operation-info.ts';
import type { TaskInfo } from '../domain/task.ts';
import { compileFilter, type AlertFilter, type FilterType } from '../filters/alert-filter.ts';
import { connectNats } from '../nats/connection.ts';
import { DisconnectedError } from './errors.ts';
import type { JobInfo } from '../jobs/job-info.ts';
import { jobsApi, waitForJob, type JobsApi } from './jobs.ts';
import { AlertInbox } from './inbox.ts';
import { NatsTransport } from './nats-transport.ts';
import type { Transport } from './transport.ts';
import { WebSocketTransport, type WebSocketOptions } from './ws-transport.ts';

export type VmInfo = {
  vmId: string;
  status: string;
  operationInfo: ReceivedOperationInfo;
  task: TaskInfo | null;
  /** Stream sequence of the VM's last alert. */
  seq: number;
};

/** What every mutating call answers: its task, and the job it runs as (the same id for one entity). */
export type TaskRef = { taskId: string; jobId: string };

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
  getRunningTasks(filter?: string, filterType?: FilterType): Promise<TaskInfo[]>;
  /** Jobs: every mutating call is one; they stay visible after they end, within the agent's retention. */
  jobs: JobsApi;
  /** Resolves once the job ended (done, failed or aborted); TimeoutError after `timeoutMs`. */
  waitForJob(jobId: string, timeoutMs?: number): Promise<JobInfo>;
  /**
   * Subscribes (once per filter) so that waitForEvent sees the filter's alerts from now on — or,
   * with `since`, every matching alert after that stream sequence first. Resolves with the
   * sequence it starts after. After a reconnect the subscription resumes where it stopped.
   */
  subscribe(filter: string, filterType?: FilterType, since?: number): Promise<number>;
  /**
   * The next alert whose name matches `filter` (glob or regexp; one entity or many). Alerts that
   * arrived since the subscription and were not taken yet count: none is missed between calls,
   * none is delivered twice. Rejects with TimeoutError after `timeoutMs`, DisconnectedError when
   * the connection drops.
   */
  waitForEvent(filter: string, timeoutMs: number, filterType?: FilterType): Promise<AlertNotification>;
  /** Resolves once connected again, with every subscription resumed where it stopped. */
  waitForReconnect(timeoutMs?: number): Promise<void>;
  readonly connected: boolean;
  /**
   * Alerts that arrived while 10,000 others waited untaken, so the oldest were dropped. When it
   * grows, what a waiter missed is still in getInfo — the seed's double check.
   */
  readonly droppedAlerts: number;
  close(): Promise<void>;
};

/**
 * Connects to an agent's JSON-RPC endpoint over WebSocket; reconnects after a drop.
 *
 * @example
 * const host = await connect('ws://127.0.0.1:4040/rpc');
 * await host.subscribe('vdsm.VM.best_vm');
 * await host.vm.pause('best_vm');
 * const event = await host.waitForEvent('vdsm.VM.best_vm', 10_000);
 */
export async function connect(url: string, options: WebSocketOptions = {}): Promise<OpstreamClient> {
  return new Client(await WebSocketTransport.open(url, options));
}

/**
 * Connects over the NATS bus: calls are request/reply to the agents, alerts come straight from
 * the stream. For managers that live on the bus.
 *
 * @example
 * const host = await connectBus('nats://127.0.0.1:4222');
 * const running = await host.getRunningTasks('*');
 */
export async function connectBus(natsUrlOrConnection: string | NatsConnection, options: { stream?: string } = {}): Promise<OpstreamClient> {
  const owns = typeof natsUrlOrConnection === 'string';
  const nc = owns ? await connectNats(natsUrlOrConnection, 'opstream-client') : natsUrlOrConnection;
  return new Client(new NatsTransport(nc, { ...options, ownsConnection: owns }));
}

type Subscription = { filter: AlertFilter; id: Promise<string>; lastSeq: number };

class Client implements OpstreamClient {
  readonly #inbox = new AlertInbox();
  readonly #subscriptions = new Map<string, Subscription>();
  #reconnected: Promise<void> = Promise.resolve();
  #markReconnected: () => void = () => undefined;

  constructor(private readonly transport: Transport) {
    transport.onAlert = (alert) => this.#receive(alert);
    transport.onStatus = (status) => {
      if (status === 'disconnected') {
        this.#reconnected = new Promise((resolve) => (this.#markReconnected = resolve));
        this.#inbox.rejectWaiters(new DisconnectedError('the connection to the agent dropped; waitForReconnect(), then getInfo to double check'));
      } else {
        void this.#resume();
      }
    };
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  get droppedAlerts(): number {
    return this.#inbox.dropped;
  }

  call<Result = unknown>(method: string, params: Record<string, unknown> = {}): Promise<Result> {
    return this.transport.call<Result>(method, params);
  }

  readonly vm: OpstreamClient['vm'] = {
    create: (vmId, definition = {}) => this.call('VM.create', { ...definition, vmId }),
    pause: (vmId) => this.call('VM.pause', { vmId }),
    cont: (vmId) => this.call('VM.cont', { vmId }),
    migrate: (vmId, dstHost) => this.call('VM.migrate', { vmId, dstHost }),
    destroy: (vmId) => this.call('VM.destroy', { vmId }),
    getInfo: (vmId) => this.call('VM.getInfo', { vmId }),
  };

  readonly jobs: JobsApi = jobsApi((method, params) => this.call(method, params));

  waitForJob(jobId: string, timeoutMs?: number): Promise<JobInfo> {
    return waitForJob(this.jobs, jobId, timeoutMs);
  }

  getRunningTasks(filter = '*', filterType: FilterType = 'glob'): Promise<TaskInfo[]> {
    return this.call('Host.getRunningTasks', { filter, filterType });
  }

  async subscribe(filter: string, filterType: FilterType = 'glob', since?: number): Promise<number> {
    const key = `${filterType}:${filter}`;
    let subscription = this.#subscriptions.get(key);
    if (!subscription) {
      const compiled = compileFilter(filter, filterType);
      const started = this.transport.subscribe(filter, filterType, since);
      subscription = { filter: compiled, id: started.then(({ id }) => id), lastSeq: since ?? 0 };
      this.#subscriptions.set(key, subscription);
      try {
        const { seq } = await started;
        subscription.lastSeq = Math.max(subscription.lastSeq, seq);
      } catch (error) {
        this.#subscriptions.delete(key);
        throw error;
      }
    }
    await subscription.id;
    return subscription.lastSeq;
  }

  async waitForEvent(filter: string, timeoutMs: number, filterType: FilterType = 'glob'): Promise<AlertNotification> {
    const compiled = compileFilter(filter, filterType);
    if (!this.transport.connected) throw new DisconnectedError('not connected to the agent; waitForReconnect() first');
    await this.subscribe(filter, filterType);
    return this.#inbox.take(compiled, timeoutMs);
  }

  async waitForReconnect(timeoutMs = 60_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DisconnectedError(`still not reconnected after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.#reconnected, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /** Each alert is delivered once, and moves every subscription it matches forward. */
  #receive(alert: AlertNotification): void {
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.filter.matches(alert.alertName)) subscription.lastSeq = Math.max(subscription.lastSeq, alert.seq);
    }
    this.#inbox.put(alert);
  }

  /** After a reconnect: subscriptions that died with the connection resume where they stopped. */
  async #resume(): Promise<void> {
    if (this.transport.resubscribesAfterReconnect) {
      for (const subscription of this.#subscriptions.values()) {
        if (!(await this.#resubscribe(subscription))) return; // dropped again: the next reconnect resumes
      }
    }
    this.#markReconnected();
  }

  /**
   * An agent that restarted answers Unavailable until it has rebuilt its entities: keep asking,
   * or the subscription would silently stay dead. False when the connection dropped meanwhile.
   */
  async #resubscribe(subscription: Subscription): Promise<boolean> {
    const { filter, filterType } = subscription.filter;
    for (let attempt = 0; this.transport.connected; attempt += 1) {
      try {
        const { id } = await this.transport.subscribe(filter, filterType, subscription.lastSeq);
        subscription.id = Promise.resolve(id);
        return true;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** Math.min(attempt, 4))));
      }
    }
    return false;
  }
}
