// Persisted XState snapshots in a JetStream KV bucket: recovery starts from an entity's newest
// valid snapshot and replays only the alerts after the sequence it covers. A snapshot is a cache
// of the stream, never a source of truth: a corrupt one or one from another machine version is
// skipped and the stream replayed instead.
import { Kvm, KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import type { MachineDefinition } from '../machines/index.ts';
import type { EntityKind } from '../src/domain/subjects.ts';
import type { Logger } from '../src/log.ts';
import type { EntityRef } from './drivers/driver.ts';

export const DEFAULT_SNAPSHOT_BUCKET = 'OPSTREAM_SNAPSHOTS';
const CHECKPOINT_KEY = 'checkpoint';

/** What a snapshot records besides XState's persisted snapshot. */
const StoredSnapshot = z.object({
  machine: z.object({ id: z.string(), version: z.number().int() }),
  /** The stream sequence of the last alert the snapshot includes. */
  seq: z.number().int().min(1),
  revision: z.number().int().min(1),
  snapshot: z.looseObject({ value: z.unknown(), context: z.record(z.string(), z.unknown()) }),
});
export type StoredSnapshot = z.infer<typeof StoredSnapshot>;

/**
 * "Every entity's snapshot covers every alert up to `seq`": written at a clean shutdown, it lets
 * recovery read the stream from there instead of from the start.
 */
const Checkpoint = z.object({ seq: z.number().int().min(0) });

export type LoadedSnapshots = {
  snapshots: Array<{ ref: EntityRef; stored: StoredSnapshot }>;
  /** Entities whose snapshot could not be trusted: recovery replays their whole history. */
  distrusted: EntityRef[];
  checkpoint: number;
};

/** KV keys allow only [-/_=.a-zA-Z0-9]; ids allow more, so they are base64url-encoded. */
export function snapshotKey(ref: EntityRef): string {
  return `entity.${ref.kind}.${Buffer.from(ref.id).toString('base64url')}`;
}

export function refOfSnapshotKey(key: string): EntityRef | undefined {
  const match = /^entity\.(.+)\.([A-Za-z0-9_-]+)$/.exec(key);
  if (!match?.[1] || !match[2]) return undefined;
  return { kind: match[1] as EntityKind, id: Buffer.from(match[2], 'base64url').toString() };
}

export class SnapshotStore {
  private constructor(
    private readonly kv: KV,
    private readonly logger: Logger,
  ) {}

  static async open(nc: NatsConnection, logger: Logger, options: { bucket?: string; replicas?: number } = {}): Promise<SnapshotStore> {
    const kv = await new Kvm(nc).create(options.bucket ?? DEFAULT_SNAPSHOT_BUCKET, {
      history: 3,
      replicas: options.replicas ?? 1,
    });
    return new SnapshotStore(kv, logger);
  }

  async save(ref: EntityRef, snapshot: StoredSnapshot): Promise<void> {
    await this.kv.put(snapshotKey(ref), JSON.stringify(snapshot));
  }

  async saveCheckpoint(seq: number): Promise<void> {
    await this.kv.put(CHECKPOINT_KEY, JSON.stringify({ seq }));
  }

  /** Forgets the checkpoint: from now on recovery cannot skip any part of the stream. */
  async clearCheckpoint(): Promise<void> {
    await this.kv.delete(CHECKPOINT_KEY);
  }

  /**
   * Every entity's newest trustworthy snapshot for `definitions`' machines, and the checkpoint.
   * A newest snapshot that does not parse falls back to an older revision of it.
   */
  async loadAll(definitions: Partial<Record<string, MachineDefinition>>): Promise<LoadedSnapshots> {
    const latest = await this.#latestEntries();
    const snapshots: LoadedSnapshots['snapshots'] = [];
    const distrusted: EntityRef[] = [];
    let checkpoint = 0;
    for (const [key, entry] of latest) {
      if (key === CHECKPOINT_KEY) {
        checkpoint = this.#parseCheckpoint(entry);
        continue;
      }
      const ref = refOfSnapshotKey(key);
      const definition = ref && definitions[ref.kind];
      if (!ref || !definition) continue;
      const snapshot = (await this.#newestValid(key, entry)) ?? undefined;
      if (!snapshot) {
        distrusted.push(ref);
        continue;
      }
      if (snapshot.machine.id !== definition.machine.id || snapshot.machine.version !== definition.version) {
        this.logger.info('snapshot is from another machine version; replaying the stream instead', {
          entity: `${ref.kind}.${ref.id}`,
          snapshot: snapshot.machine,
          current: { id: definition.machine.id, version: definition.version },
        });
        distrusted.push(ref);
        continue;
      }
      snapshots.push({ ref, stored: snapshot });
    }
    return { snapshots, distrusted, checkpoint };
  }

  /** The last entry of every key, read in one pass over the bucket. */
  async #latestEntries(): Promise<Map<string, KvEntry>> {
    const latest = new Map<string, KvEntry>();
    if ((await this.kv.status()).values === 0) return latest;
    const watcher = await this.kv.watch({ include: KvWatchInclude.LastValue });
    for await (const entry of watcher) {
      if (entry.operation === 'PUT') latest.set(entry.key, entry);
      else latest.delete(entry.key);
      if (entry.delta === 0) break;
    }
    watcher.stop();
    return latest;
  }

  async #newestValid(key: string, newest: KvEntry): Promise<StoredSnapshot | undefined> {
    const parsed = parseSnapshot(newest);
    if (parsed) return parsed;
    this.logger.warn('skipping a corrupt snapshot', { key, revision: newest.revision });
    const history: KvEntry[] = [];
    for await (const entry of await this.kv.history({ key })) history.push(entry);
    for (const entry of history.reverse()) {
      if (entry.revision === newest.revision || entry.operation !== 'PUT') continue;
      const older = parseSnapshot(entry);
      if (older) return older;
    }
    return undefined;
  }

  #parseCheckpoint(entry: KvEntry): number {
    const parsed = Checkpoint.safeParse(safeJson(entry));
    if (parsed.success) return parsed.data.seq;
    this.logger.warn('ignoring a corrupt checkpoint; recovery reads the whole stream');
    return 0;
  }
}

function parseSnapshot(entry: KvEntry): StoredSnapshot | undefined {
  const parsed = StoredSnapshot.safeParse(safeJson(entry));
  return parsed.success ? parsed.data : undefined;
}

function safeJson(entry: KvEntry): unknown {
  try {
    return entry.json();
  } catch {
    return undefined;
  }
}
