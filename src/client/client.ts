// The client library: typed calls, subscriptions that survive reconnects, and waitForEvent in
// the spirit of the seed's client loop — over WebSocket JSON-RPC or directly over NATS.
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import type { AlertNotification } from '../domain/alert.ts';
import type { ReceivedOperationInfo } from '../domain/operation-info.ts';
import type { TaskInfo } from '../domain/task.ts';
import { INBOX_PREFIXES } from '../domain/api-subjects.ts';
import { ErrorCodes } from '../domain/errors.ts';
import { retryDelayMs, retryPolicy, type RetryPolicy, type RetryPolicyInput } from '../domain/retry-policy.ts';
import { compileFilter, type FilterType } from '../filters/alert-filter.ts';
import { connectNats, type NatsAccess } from '../nats/connection.ts';
import { DisconnectedError, RpcError } from './errors.ts';
import type { JobInfo } from '../domain/job.ts';
import { jobsApi, waitForJob, type JobsApi } from './jobs.ts';
import { AlertInbox } from './inbox.ts';
import { NatsTransport } from './nats-transport.ts';
import { prepareCall } from './retry-safe.ts';
import { SubscriptionTable } from './subscriptions.ts';
import type { Transport } from './transport.ts';
import { WebSocketTransport, type WebSocketOptions } from './ws-transport.ts';

export type VmInfo = {
  vmId: string;
  status: string;
  operationInfo: ReceivedOperationInfo;
  task: TaskInfo | null;
  /** Stream sequence of the VM's last alert. */
  seq: number;
  /** The host that runs the VM (any agent of the fleet answers for every host's VMs). */
  hostId?: string;
};

/** What every mutating call answers: its task, and the job it runs as (the same id for one entity). */
export type TaskRef = { taskId: string; jobId: string };

/** Whose running tasks: another host's (`hostId`: its agent answers), or every host's of the fleet. */
export type RunningTasksScope = { hostId?: string; fleet?: boolean };

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
  /** The running tasks of the agent's own host; `hostId`: another host's (its agent answers); `fleet`: every host's. */
  getRunningTasks(filter?: string, filterType?: FilterType, options?: RunningTasksScope): Promise<TaskInfo[]>;
  /** Jobs: every mutating call is one; they stay visible after they end, within the agent's retention. */
  jobs: JobsApi;
  /** Resolves once the job ended (done, failed or aborted); TimeoutError after `timeoutMs`. */
  waitForJob(jobId: string, timeoutMs?: number): Promise<JobInfo>;
  /**
   * Subscribes (one agent subscription per filter) so that waitForEvent sees the filter's alerts
   * from now on — or, with `since`, every matching alert after that stream sequence first.
   * Resolves with the sequence it starts after. After a reconnect the subscription resumes where
   * it stopped. Held until a matching `unsubscribe`.
   */
  subscribe(filter: string, filterType?: FilterType, since?: number): Promise<number>;
  /** Releases one `subscribe` of this filter; the last release ends the agent's subscription. */
  unsubscribe(filter: string, filterType?: FilterType): Promise<void>;
  /**
   * The next alert whose name matches `filter` (glob or regexp; one entity or many). Alerts that
   * arrived since the subscription and were not taken yet count: none is missed between calls,
   * none is delivered twice. Rejects with TimeoutError after `timeoutMs`, DisconnectedError when
   * the connection drops. Without a `subscribe` of the same filter it subscribes for itself; that
   * subscription lingers `subscriptionLingerMs` after the wait and is then dropped.
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
  /** Notifications that could not be read as alerts (also passed to `onMalformed`). */
  readonly malformedNotifications: number;
  /** Attempts sent again after the agent answered 105 Unavailable (see `unavailableRetryMs`). */
  readonly unavailableRetries: number;
  close(): Promise<void>;
};

/** What both `connect` and `connectBus` accept. */
export type ClientOptions = {
  /**
   * Backoff between reconnect attempts, between resubscribe attempts, and between attempts of a
   * retry-safe call answered Unavailable (see RetryPolicy).
   */
  retry?: RetryPolicyInput;
  /**
   * How long a retry-safe call — a read, or a write that runs as a job — keeps being sent again
   * while the agent answers 105 Unavailable (a stream leader election, an agent still rebuilding);
   * then that error is thrown. Default 60 s; 0 = never retry.
   */
  unavailableRetryMs?: number;
  /**
   * Give every job write without a jobId a fresh one (default true), so that it too is retried
   * after Unavailable and runs once. With false, such writes are never retried.
   */
  idempotentWrites?: boolean;
  /** How long a subscription that only waitForEvent made outlives its last wait (default 30 s). */
  subscriptionLingerMs?: number;
  /** Told about every notification that cannot be an alert (default: counted only). */
  onMalformed?: (reason: string) => void;
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
export async function connect(url: string, options: WebSocketOptions & ClientOptions = {}): Promise<OpstreamClient> {
  const retry = retryPolicy(options.retry);
  return new Client(await WebSocketTransport.open(url, { ...options, retry }), { ...options, retry });
}

/**
 * Connects over the NATS bus: calls are request/reply to the agents, alerts come straight from
 * the stream. For managers that live on the bus.
 *
 * @example
 * const host = await connectBus('nats://127.0.0.1:4222');
 * const running = await host.getRunningTasks('*');
 */
export async function connectBus(natsUrlOrConnection: string | NatsConnection, options: BusOptions = {}): Promise<OpstreamClient> {
  const retry = retryPolicy(options.retry);
  const owns = typeof natsUrlOrConnection === 'string';
  const inboxPrefix = options.inboxPrefix ?? (options.role === 'viewer' ? INBOX_PREFIXES.viewer : INBOX_PREFIXES.manager);
  const nc = owns ? await connectNats(natsUrlOrConnection, 'opstream-client', { ...options, inboxPrefix }) : natsUrlOrConnection;
  return new Client(new NatsTransport(nc, { stream: options.stream, role: options.role, ownsConnection: owns }), { ...options, retry });
}

export type BusOptions = NatsAccess &
  ClientOptions & {
    stream?: string;
    /** `viewer` identities may only call read methods, on the read subject (default `operator`). */
    role?: 'operator' | 'viewer';
  };

const DEFAULT_LINGER_MS = 30_000;
/** A leader election takes seconds, an agent's recovery of 10,000 entities about as long. */
const DEFAULT_UNAVAILABLE_RETRY_MS = 60_000;

type Deferred = { promise: Promise<void>; resolve(): void; reject(error: Error): void };

function deferred(): Deferred {
  let resolve: () => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const promise = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  promise.catch(() => undefined); // nobody may be waiting for a reconnect when it fails
  return { promise, resolve, reject };
}

class Client implements OpstreamClient {
  readonly #inbox = new AlertInbox();
  readonly #subscriptions: SubscriptionTable;
  #reconnected: Deferred = { promise: Promise.resolve(), resolve: () => undefined, reject: () => undefined };
  #malformed = 0;
  #unavailableRetries = 0;
  readonly #retry: RetryPolicy;
  readonly #unavailableRetryMs: number;
  readonly #idempotentWrites: boolean;

  constructor(
    private readonly transport: Transport,
    options: ClientOptions & { retry: RetryPolicy },
  ) {
    const lingerMs = options.subscriptionLingerMs ?? DEFAULT_LINGER_MS;
    if (!Number.isInteger(lingerMs) || lingerMs < 0) throw new RangeError(`subscriptionLingerMs must be a whole number of milliseconds, 0 or more (got ${lingerMs})`);
    this.#unavailableRetryMs = options.unavailableRetryMs ?? DEFAULT_UNAVAILABLE_RETRY_MS;
    if (!Number.isInteger(this.#unavailableRetryMs) || this.#unavailableRetryMs < 0) {
      throw new RangeError(`unavailableRetryMs must be a whole number of milliseconds, 0 or more (got ${this.#unavailableRetryMs})`);
    }
    this.#retry = options.retry;
    this.#idempotentWrites = options.idempotentWrites ?? true;
    this.#subscriptions = new SubscriptionTable(transport, { lingerMs, retry: options.retry });
    transport.onAlert = (alert) => this.#receive(alert);
    transport.onMalformed = (reason) => {
      this.#malformed += 1;
      options.onMalformed?.(reason);
    };
    transport.onSubscriptionEnded = (id, reason) => void this.#renew(id, reason);
    transport.onStatus = (status) => {
      if (status === 'disconnected') {
        this.#reconnected = deferred();
        this.#inbox.rejectWaiters(new DisconnectedError('the connection to the agent dropped; waitForReconnect(), then getInfo to double check'));
      } else if (status === 'gave-up') {
        this.#reconnected.reject(new DisconnectedError('gave up reconnecting: the retry policy has no attempts left'));
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

  get malformedNotifications(): number {
    return this.#malformed;
  }

  get unavailableRetries(): number {
    return this.#unavailableRetries;
  }

  /**
   * Sends the call; a retry-safe one (see retry-safe.ts) answered Unavailable is sent again, as
   * the retry policy paces it, for up to `unavailableRetryMs`. Every attempt carries the same
   * params — a write's jobId included — so the agent runs it once.
   */
  async call<Result = unknown>(method: string, params: Record<string, unknown> = {}): Promise<Result> {
    const prepared = prepareCall(method, params, this.#idempotentWrites);
    const giveUpAt = Date.now() + this.#unavailableRetryMs;
    for (let retry = 1; ; retry += 1) {
      try {
        return await this.transport.call<Result>(method, prepared.params);
      } catch (error) {
        const unavailable = error instanceof RpcError && error.code === ErrorCodes.Unavailable;
        const delay = unavailable && prepared.retrySafe ? retryDelayMs(this.#retry, retry) : undefined;
        if (delay === undefined || Date.now() + delay > giveUpAt) throw error;
        this.#unavailableRetries += 1;
        await sleep(delay);
      }
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

  readonly jobs: JobsApi = jobsApi((method, params) => this.call(method, params));

  waitForJob(jobId: string, timeoutMs?: number): Promise<JobInfo> {
    return waitForJob(this.jobs, jobId, timeoutMs);
  }

  getRunningTasks(filter = '*', filterType: FilterType = 'glob', options: RunningTasksScope = {}): Promise<TaskInfo[]> {
    const { hostId, fleet } = options;
    return this.call('Host.getRunningTasks', { filter, filterType, ...(hostId === undefined ? {} : { hostId }), ...(fleet ? { scope: 'fleet' } : {}) });
  }

  async subscribe(filter: string, filterType: FilterType = 'glob', since?: number): Promise<number> {
    const subscription = await this.#subscriptions.acquire(filter, filterType, 'hold', since);
    return subscription.lastSeq;
  }

  unsubscribe(filter: string, filterType: FilterType = 'glob'): Promise<void> {
    return this.#subscriptions.release(filter, filterType);
  }

  async waitForEvent(filter: string, timeoutMs: number, filterType: FilterType = 'glob'): Promise<AlertNotification> {
    const compiled = compileFilter(filter, filterType);
    if (!this.transport.connected) throw new DisconnectedError('not connected to the agent; waitForReconnect() first');
    const subscription = await this.#subscriptions.acquire(filter, filterType, 'wait');
    try {
      return await this.#inbox.take(compiled, timeoutMs);
    } finally {
      this.#subscriptions.doneWaiting(subscription);
    }
  }

  async waitForReconnect(timeoutMs = 60_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DisconnectedError(`still not reconnected after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.#reconnected.promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#subscriptions.clear();
    await this.transport.close();
  }

  /** Each alert is delivered once, and moves every subscription it matches forward. */
  #receive(alert: AlertNotification): void {
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.filter.matches(alert.alertName)) subscription.lastSeq = Math.max(subscription.lastSeq, alert.seq);
    }
    this.#inbox.put(alert);
  }

  /**
   * The agent ended one subscription on its own (its feed died): resubscribe after the last
   * delivered sequence, so nothing is missed. Waiters keep waiting meanwhile; if the policy gives
   * up, the subscription is forgotten and the next waitForEvent opens a new one.
   */
  async #renew(id: string, reason: string): Promise<void> {
    // The notice can arrive in the same read as the subscribe's reply, before its id is known here.
    await Promise.allSettled([...this.#subscriptions.values()].map((subscription) => subscription.id));
    const subscription = this.#subscriptions.byAgentId(id);
    if (!subscription) return;
    subscription.currentId = undefined;
    const outcome = await this.#subscriptions.resubscribe(subscription);
    if (outcome === 'gave-up') {
      this.#subscriptions.forget(subscription);
      const error = new DisconnectedError(`the agent ended the subscription to ${subscription.filter.filter} (${reason}) and resubscribing failed`);
      this.#inbox.rejectWaiters(error, subscription.filter);
    }
  }

  /**
   * After a reconnect: subscriptions that died with the connection resume where they stopped. An
   * agent that restarted answers Unavailable until it has rebuilt its entities, so each is retried
   * as the retry policy says, or it would silently stay dead.
   */
  async #resume(): Promise<void> {
    if (this.transport.resubscribesAfterReconnect) {
      for (const subscription of [...this.#subscriptions.values()]) {
        const outcome = await this.#subscriptions.resubscribe(subscription);
        if (outcome === 'dropped') return; // dropped again: the next reconnect resumes
        if (outcome === 'gave-up') {
          this.#reconnected.reject(new DisconnectedError(`gave up resubscribing to ${subscription.filter.filter}: the retry policy has no attempts left`));
          return;
        }
      }
    }
    this.#reconnected.resolve();
  }
}
