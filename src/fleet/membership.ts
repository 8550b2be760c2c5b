// The fleet's view of its hosts, kept in a KV bucket (one key per host). Each agent holds a lease
// on its own key: it renews it every heartbeat with a compare-and-set on the key's revision, so the
// moment anyone else changes the key the agent's next renewal fails and it knows it was fenced.
// Every agent watches the bucket and times each host's heartbeats on its own clock (no clocks are
// compared across hosts); a host silent for longer than the lease is declared lost — by one agent,
// since declaring it is a compare-and-set too — and a lost host's new start is a new epoch.
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { createLogger, type Logger } from '../log.ts';

export const DEFAULT_HOSTS_BUCKET = 'OPSTREAM_HOSTS';
export const DEFAULT_HEARTBEAT_MS = 1_000;
export const DEFAULT_LEASE_MS = 5_000;

const HostRecord = z.object({
  hostId: z.string().min(1).max(253),
  /** Counts the host's starts and returns: a fenced agent's epoch is stale. */
  epoch: z.number().int().min(1),
  state: z.enum(['up', 'lost']),
  /** For people reading the bucket; liveness never compares it with another host's clock. */
  heartbeatAt: z.string().max(64),
  lostBy: z.string().max(253).optional(),
});
export type HostRecord = z.infer<typeof HostRecord>;

export type HostStatus = HostRecord & {
  /** Whether this agent has heard the host within the lease (always true for itself). */
  responsive: boolean;
};

export type MembershipOptions = {
  hostId: string;
  bucket?: string;
  replicas?: number;
  heartbeatMs?: number;
  /** A host not heard from for this long is lost; default 5 s. */
  leaseMs?: number;
  logger?: Logger;
  /** This agent's lease was taken from it (its renewal was refused): stop writing, then rejoin. */
  onLeaseLost: () => void;
  /**
   * Another host was declared lost; `declaredBy` is the agent that won the declaration and fences
   * its entities (the others step in only when that agent is gone too).
   */
  onHostLost: (hostId: string, epoch: number, declaredBy: string | undefined) => void;
  /** Another host is up again, or for the first time. */
  onHostUp?: (hostId: string) => void;
};

type Seen = { record: HostRecord; revision: number; heardAt: number };

export class FleetMembership {
  readonly #seen = new Map<string, Seen>();
  #revision = 0;
  #epoch = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopWatching: () => void = () => undefined;
  #fenced = false;
  #beating = false;
  /** Since when this agent's renewals have failed for want of the bucket (not a refused CAS). */
  #bucketAwaySince: number | undefined;
  readonly #logger: Logger;

  private constructor(
    private readonly kv: KV,
    private readonly options: MembershipOptions & { heartbeatMs: number; leaseMs: number },
  ) {
    this.#logger = options.logger ?? createLogger('fleet');
  }

  static async join(nc: NatsConnection, options: MembershipOptions): Promise<FleetMembership> {
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    if (!(leaseMs >= 2 * heartbeatMs)) throw new RangeError(`invalid lease ${leaseMs} ms: it must last at least two heartbeats (${heartbeatMs} ms)`);
    const kv = await new Kvm(nc).create(options.bucket ?? DEFAULT_HOSTS_BUCKET, { replicas: options.replicas ?? 1, history: 1 });
    const membership = new FleetMembership(kv, { ...options, heartbeatMs, leaseMs });
    await membership.#acquire();
    await membership.#watch();
    membership.#timer = setInterval(() => void membership.#tick(), heartbeatMs);
    membership.#timer.unref();
    return membership;
  }

  get hostId(): string {
    return this.options.hostId;
  }

  /** This agent's current lease epoch (it grows each time the host starts or returns). */
  get epoch(): number {
    return this.#epoch;
  }

  /** Whether the lease is lost and not yet taken back (writes are refused meanwhile). */
  get fenced(): boolean {
    return this.#fenced;
  }

  /** Whether `hostId` is a host of the fleet that answers now. */
  isLive(hostId: string): boolean {
    if (hostId === this.options.hostId) return !this.#fenced;
    const seen = this.#seen.get(hostId);
    return seen !== undefined && seen.record.state === 'up' && this.#responsive(seen);
  }

  /** Every host the bucket knows, as this agent sees it. */
  hosts(): HostStatus[] {
    return [...this.#seen.values()]
      .map((seen) => ({ ...seen.record, responsive: this.isLive(seen.record.hostId) }))
      .sort((a, b) => a.hostId.localeCompare(b.hostId));
  }

  /**
   * Takes the lease again after it was lost: a new epoch, written over whatever the key holds. The
   * caller has stopped all work first; it then returns its entities as a restart would.
   */
  async rejoin(): Promise<number> {
    const current = await this.kv.get(this.options.hostId);
    const record = current && current.operation === 'PUT' ? parseRecord(current) : undefined;
    if (record?.state === 'up' && record.epoch > this.#epoch) {
      // Not declared lost: another agent started with this host id. Two writers for one host would
      // fence each other for ever; the newer one keeps the host, this one stays fenced.
      throw new Error(`another agent runs as host ${this.options.hostId} (lease epoch ${record.epoch}); this one stays fenced — give each agent its own --host-id`);
    }
    await this.#acquire();
    this.#fenced = false;
    return this.#epoch;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopWatching();
  }

  #responsive(seen: Seen): boolean {
    return performance.now() - seen.heardAt <= this.options.leaseMs;
  }

  async #acquire(): Promise<void> {
    // Another agent may be declaring this host lost at the same moment: read again and retry.
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.#acquireOnce();
        return;
      } catch (error) {
        if (!isWrongLastSequence(error) || attempt >= 5) throw error;
      }
    }
  }

  async #acquireOnce(): Promise<void> {
    const key = this.options.hostId;
    const current = await this.kv.get(key);
    const previous = current && current.operation === 'PUT' ? parseRecord(current) : undefined;
    const record: HostRecord = { hostId: key, epoch: (previous?.epoch ?? 0) + 1, state: 'up', heartbeatAt: new Date().toISOString() };
    // A second agent with the same host id would fence the first over and over: both would flap.
    // The CAS below at least makes the start itself one-at-a-time.
    this.#revision = current ? await this.kv.update(key, JSON.stringify(record), current.revision) : await this.kv.create(key, JSON.stringify(record));
    this.#epoch = record.epoch;
    this.#seen.set(key, { record, revision: this.#revision, heardAt: performance.now() });
    this.#logger.info('holding the host lease', { hostId: key, epoch: record.epoch });
  }

  async #watch(): Promise<void> {
    const watcher = await this.kv.watch();
    this.#stopWatching = () => watcher.stop();
    void (async () => {
      for await (const entry of watcher) this.#heard(entry);
    })().catch((error: unknown) => this.#logger.warn('the watch of the host bucket ended', { error: String(error) }));
  }

  #heard(entry: KvEntry): void {
    if (entry.operation !== 'PUT') return;
    const record = parseRecord(entry);
    if (!record || record.hostId !== entry.key) {
      this.#logger.warn('ignoring a malformed host record', { key: entry.key.slice(0, 100) });
      return;
    }
    const before = this.#seen.get(entry.key);
    if (before && before.revision >= entry.revision) return;
    this.#seen.set(entry.key, { record, revision: entry.revision, heardAt: performance.now() });
    if (entry.key === this.options.hostId) {
      // Our own renewals come back here too (sometimes before their ack): only a record that is
      // not ours — declared lost, or a newer start under our name — fences; renewing would fail.
      const ours = record.state === 'up' && record.epoch === this.#epoch;
      if (!ours && !this.#fenced) this.#fence(record.state === 'lost' ? `declared lost by ${record.lostBy ?? 'another agent'}` : `another agent took this host's lease (epoch ${record.epoch})`);
      return;
    }
    if (record.state === 'lost' && before?.record.state !== 'lost') this.options.onHostLost(record.hostId, record.epoch, record.lostBy);
    if (record.state === 'up' && (before === undefined || before.record.state === 'lost' || before.record.epoch !== record.epoch)) {
      this.options.onHostUp?.(record.hostId);
    }
  }

  async #tick(): Promise<void> {
    if (this.#beating) return;
    this.#beating = true;
    try {
      if (!this.#fenced) await this.#renew();
      await this.#declareSilentHostsLost();
    } finally {
      this.#beating = false;
    }
  }

  async #renew(): Promise<void> {
    const record: HostRecord = { hostId: this.options.hostId, epoch: this.#epoch, state: 'up', heartbeatAt: new Date().toISOString() };
    try {
      this.#revision = await this.kv.update(this.options.hostId, JSON.stringify(record), this.#revision);
      if (this.#bucketAwaySince !== undefined) {
        // While the bucket was away (a leader election, a partition from it) nobody's renewals got
        // through, so silence says nothing: every host gets a whole lease from now to show up.
        this.#bucketAwaySince = undefined;
        const now = performance.now();
        for (const seen of this.#seen.values()) seen.heardAt = Math.max(seen.heardAt, now);
      }
    } catch (error) {
      // A refused compare-and-set is the fence — unless the key holds our own lease: a renewal
      // whose answer was lost landed after all. Anything else (the server away) is retried.
      if (isWrongLastSequence(error)) await this.#adoptOwnOrFence();
      else {
        this.#bucketAwaySince ??= performance.now();
        this.#logger.warn('could not renew the host lease', { error: String(error) });
      }
    }
  }

  async #adoptOwnOrFence(): Promise<void> {
    const current = await this.kv.get(this.options.hostId).catch(() => null);
    const record = current && current.operation === 'PUT' ? parseRecord(current) : undefined;
    if (current && record?.state === 'up' && record.epoch === this.#epoch) {
      this.#revision = current.revision;
      return;
    }
    this.#fence('the lease renewal was refused');
  }

  #fence(why: string): void {
    this.#fenced = true;
    this.#logger.error('this host lost its lease: it stops writing until it rejoins', { hostId: this.options.hostId, epoch: this.#epoch, why });
    this.options.onLeaseLost();
  }

  async #declareSilentHostsLost(): Promise<void> {
    // Only an agent whose own renewals get through can tell a silent host from a silent bucket.
    if (this.#fenced || this.#bucketAwaySince !== undefined) return;
    for (const [hostId, seen] of this.#seen) {
      if (hostId === this.options.hostId || seen.record.state !== 'up' || this.#responsive(seen)) continue;
      const lost: HostRecord = { ...seen.record, state: 'lost', lostBy: this.options.hostId, heartbeatAt: new Date().toISOString() };
      try {
        // Only one agent wins this; the others see the key change and act on it through the watch.
        await this.kv.update(hostId, JSON.stringify(lost), seen.revision);
        this.#logger.warn('declared a silent host lost', { hostId, epoch: seen.record.epoch, silentMs: Math.round(performance.now() - seen.heardAt) });
      } catch (error) {
        if (!isWrongLastSequence(error)) this.#logger.warn('could not declare a silent host lost', { hostId, error: String(error) });
      }
    }
  }
}

function parseRecord(entry: KvEntry): HostRecord | undefined {
  if (entry.length > 4_096) return undefined;
  try {
    const parsed = HostRecord.safeParse(entry.json());
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function isWrongLastSequence(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamWrongLastSequence;
}
