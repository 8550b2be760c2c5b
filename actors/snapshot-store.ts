// Persisted XState snapshots in a JetStream KV bucket: recovery starts from an entity's newest
// valid snapshot and replays only the alerts after the sequence it covers. A snapshot is a cache
// of the stream, never a source of truth: one that is corrupt, not sealed by an agent, from
// another machine version, or ahead of the stream is skipped and the stream replayed instead.
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import type { MachineDefinition } from '../machines/index.ts';
import { entityKey, type EntityKind } from '../src/domain/subjects.ts';
import type { Logger } from '../src/log.ts';
import type { HistorySeal } from '../src/security/history-seal.ts';
import type { EntityRef } from './drivers/driver.ts';
import type { Quarantine } from './quarantine.ts';
import { ImageRef, SnapshotImages, type ImageEntry } from './snapshot-image.ts';

export const DEFAULT_SNAPSHOT_BUCKET = 'OPSTREAM_SNAPSHOTS';
/** The host agents run as unless told otherwise: it keeps the checkpoint key agents used before hosts had one. */
export const DEFAULT_HOST_ID = 'local';
const CHECKPOINT_KEY = 'checkpoint';

/**
 * Each agent of a fleet has its own checkpoint: it vouches only for the snapshots that agent
 * saw saved. Host ids may hold characters KV keys do not, hence base64url.
 */
export function checkpointKey(hostId: string = DEFAULT_HOST_ID): string {
  return hostId === DEFAULT_HOST_ID ? CHECKPOINT_KEY : `${CHECKPOINT_KEY}.${Buffer.from(hostId).toString('base64url')}`;
}

const isCheckpointKey = (key: string): boolean => key === CHECKPOINT_KEY || key.startsWith(`${CHECKPOINT_KEY}.`);

/** What a snapshot records besides XState's persisted snapshot. */
export const StoredSnapshot = z.object({
  machine: z.object({ id: z.string(), version: z.number().int() }),
  /** The stream sequence of the last alert the snapshot includes. */
  seq: z.number().int().min(1),
  revision: z.number().int().min(1),
  snapshot: z.looseObject({ value: z.unknown(), context: z.record(z.string(), z.unknown()) }),
  /** The entity's owner at `seq` (see placement.ts); absent for histories from before the fleet. */
  placement: z
    .object({ hostId: z.string(), lost: z.boolean().optional(), lostEpoch: z.number().int().optional(), epoch: z.number().int().optional() })
    .optional(),
});
export type StoredSnapshot = z.infer<typeof StoredSnapshot>;

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const isWhole = (value: unknown, min: number): boolean => Number.isSafeInteger(value) && (value as number) >= min;
const onlyKeys = (object: Json, allowed: ReadonlySet<string>): boolean => Object.keys(object).every((key) => allowed.has(key));
const SNAPSHOT_KEYS = new Set(['machine', 'seq', 'revision', 'snapshot', 'placement']);
const PLACEMENT_KEYS = new Set(['hostId', 'lost', 'lostEpoch', 'epoch']);

/**
 * Whether the schema would take `json` as it is (no key to strip, nothing to coerce): a restart
 * judges every entity's snapshot, and zod cost as much as the JSON parse. Anything else gets the
 * schema's verdict, so this is never weaker.
 */
export function isExactSnapshot(json: unknown): json is StoredSnapshot {
  if (!isObject(json) || !onlyKeys(json, SNAPSHOT_KEYS)) return false;
  const { machine, snapshot, placement } = json;
  return (
    isObject(machine) && Object.keys(machine).length === 2 && typeof machine['id'] === 'string' && isWhole(machine['version'], Number.MIN_SAFE_INTEGER) &&
    isWhole(json['seq'], 1) &&
    isWhole(json['revision'], 1) &&
    isObject(snapshot) && Object.hasOwn(snapshot, 'value') && isObject(snapshot['context']) &&
    (placement === undefined ||
      (isObject(placement) && onlyKeys(placement, PLACEMENT_KEYS) && typeof placement['hostId'] === 'string' &&
        (placement['lost'] === undefined || typeof placement['lost'] === 'boolean') &&
        (placement['lostEpoch'] === undefined || isWhole(placement['lostEpoch'], Number.MIN_SAFE_INTEGER)) &&
        (placement['epoch'] === undefined || isWhole(placement['epoch'], Number.MIN_SAFE_INTEGER))))
  );
}

/**
 * "Every entity's snapshot covers every alert up to `seq`": written while the agent runs and at a
 * clean shutdown, it lets recovery — after a crash too — read the stream from there instead of
 * from the start.
 */
// The image is judged on its own (ImageRef): one this version cannot use must not cost the checkpoint.
const Checkpoint = z.object({
  seq: z.number().int().min(0),
  image: z.unknown().optional(),
  /**
   * How many entity snapshots the agent knew to be in the bucket when it wrote the checkpoint.
   * Agents never remove one, so a bucket holding fewer lost some without a trace (a purge of the
   * bucket's stream, purgeDeletes): the checkpoint cannot vouch for their entities then.
   */
  keys: z.number().int().min(0).optional(),
});
type Checkpoint = z.infer<typeof Checkpoint>;

/** What loading made of one key's newest entry. */
type Judged = 'unknown' | { ref: EntityRef; definition: MachineDefinition; revision: number; snapshot: StoredSnapshot | undefined };

export type LoadedSnapshots = {
  /**
   * `unsaved`: the KV may not hold this snapshot (an image can hold a state a stop reached after
   * its last save): recovery uses it, but counts the entity as not snapshotted, so it is saved again.
   */
  snapshots: Array<{ ref: EntityRef; stored: StoredSnapshot; unsaved?: true }>;
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
  /** Where distrusted entries are reported; recovery sets it. */
  quarantine?: Quarantine;
  /**
   * Per snapshot key, the KV revision last seen and the stream sequence it covers: a save names
   * the revision it replaces, so saves racing (a periodic one, a checkpoint's, another process's)
   * cannot put an older snapshot over a newer one, and an older one is dropped without a round trip.
   */
  readonly #known = new Map<string, { revision: number; seq: number }>();

  private constructor(
    private readonly kv: KV,
    private readonly images: SnapshotImages,
    private readonly logger: Logger,
    private readonly seal: HistorySeal | undefined,
  ) {}

  static async open(
    nc: NatsConnection,
    logger: Logger,
    options: { bucket?: string; replicas?: number; seal?: HistorySeal } = {},
  ): Promise<SnapshotStore> {
    const bucket = options.bucket ?? DEFAULT_SNAPSHOT_BUCKET;
    const replicas = options.replicas ?? 1;
    const kv = await new Kvm(nc).create(bucket, { history: 3, replicas });
    const images = await SnapshotImages.open(nc, `${bucket}_IMAGES`, replicas);
    return new SnapshotStore(kv, images, logger, options.seal);
  }

  /**
   * Stores the snapshot unless the bucket already holds one covering as much of the stream or
   * more: snapshots never go backwards. Resolves false when it kept the stored one.
   */
  async save(ref: EntityRef, snapshot: StoredSnapshot): Promise<boolean> {
    const key = snapshotKey(ref);
    const value = this.#sealed(key, JSON.stringify(snapshot));
    for (;;) {
      const known = this.#known.get(key);
      if (known && known.seq >= snapshot.seq) return false;
      try {
        const revision = known && known.revision > 0 ? await this.kv.update(key, value, known.revision) : await this.kv.create(key, value);
        this.#remember(key, revision, snapshot.seq);
        return true;
      } catch (error) {
        if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.StreamWrongLastSequence) throw error;
        // Someone saved since we last looked: learn what it covers, then keep or replace it.
        const entry = await this.kv.get(key);
        if (!entry) throw error;
        this.#known.set(key, { revision: entry.revision, seq: entry.operation === 'PUT' ? this.#coveredSeq(entry) : 0 });
      }
    }
  }

  #remember(key: string, revision: number, seq: number): void {
    const known = this.#known.get(key);
    if (!known || known.revision < revision) this.#known.set(key, { revision, seq });
  }

  /** The sequence a stored entry claims to cover; 0 for one that is not a trusted snapshot (it may be replaced). */
  #coveredSeq(entry: KvEntry): number {
    const opened = this.#open(entry);
    if ('problem' in opened) return 0;
    const seq = (opened.json as { seq?: unknown } | null)?.seq;
    return typeof seq === 'number' && Number.isInteger(seq) ? seq : 0;
  }

  /** With `image`, the checkpoint vouches for that image too (see saveImage). */
  async saveCheckpoint(seq: number, hostId: string = DEFAULT_HOST_ID, image?: ImageRef): Promise<void> {
    const key = checkpointKey(hostId);
    const checkpoint: Checkpoint = { seq, keys: this.#storedKeys(), ...(image ? { image } : {}) };
    await this.kv.put(key, this.#sealed(key, JSON.stringify(checkpoint)));
  }

  /**
   * Stores every snapshot in `snapshots` as one image for `hostId`'s next start. It is used only
   * once a checkpoint names it, and only if every snapshot it holds is stored in the KV too (a
   * clean stop saves them first): it is a faster read of them, never the only copy.
   */
  async saveImage(snapshots: Array<{ ref: EntityRef; stored: StoredSnapshot }>, hostId: string = DEFAULT_HOST_ID): Promise<ImageRef> {
    const entries = snapshots.map(({ ref, stored }): ImageEntry => {
      const key = snapshotKey(ref);
      const known = this.#known.get(key);
      // The revision lets the next start's saves replace the KV's copy without asking first.
      return [key, known && known.seq === stored.seq ? known.revision : 0, stored];
    });
    return this.images.save(checkpointKey(hostId), entries);
  }

  /** Purges what image writes cut short by a kill -9 left in the image bucket; resolves with how many. */
  purgeOrphanedImageChunks(minAgeMs?: number): Promise<number> {
    return this.images.purgeOrphanedChunks(minAgeMs);
  }

  /** Entity snapshots known to be in the bucket: loaded from it, or saved with a revision. */
  #storedKeys(): number {
    let stored = 0;
    for (const { revision } of this.#known.values()) if (revision > 0) stored += 1;
    return stored;
  }

  /** A sealed value is `<seal>\n<json>`: KV entries carry no headers a reader could check. */
  #sealed(key: string, body: string): string {
    return this.seal ? `${this.seal.seal(key, body)}\n${body}` : body;
  }

  /** The JSON of an entry, or why it cannot be trusted. */
  #open(entry: KvEntry): { json: unknown } | { problem: string } {
    let text = entry.string();
    if (this.seal) {
      const newline = text.indexOf('\n');
      const seal = newline > 0 ? text.slice(0, newline) : undefined;
      const body = newline > 0 ? text.slice(newline + 1) : text;
      if (!this.seal.verify(entry.key, body, seal)) return { problem: seal ? 'its seal does not match' : 'it carries no seal: not written by an agent' };
      text = body;
    }
    try {
      return { json: JSON.parse(text) };
    } catch (error) {
      return { problem: `not JSON (${(error as Error).message})` };
    }
  }

  /** Forgets the checkpoint: from now on recovery cannot skip any part of the stream. */
  async clearCheckpoint(hostId: string = DEFAULT_HOST_ID): Promise<void> {
    await this.kv.delete(checkpointKey(hostId));
  }

  /**
   * Every entity's newest trustworthy snapshot for `definitions`' machines, and the checkpoint.
   * A newest snapshot that cannot be trusted falls back to an older revision of it; nothing may
   * claim to cover more of the stream than it holds (`streamLastSeq`).
   */
  async loadAll(
    definitions: Partial<Record<string, MachineDefinition>>,
    streamLastSeq: number,
    hostId: string = DEFAULT_HOST_ID,
  ): Promise<LoadedSnapshots> {
    const fromImage = await this.#loadImage(definitions, streamLastSeq, hostId);
    if (fromImage) return fromImage;
    const ownCheckpoint = checkpointKey(hostId);
    // Each entry is judged as it arrives: holding 100,000 raw entries (and the read buffers they
    // point into) until the read ends was most of a big restart's garbage.
    const judged = new Map<string, Judged>();
    let checkpoint: { entry: KvEntry; checkpoint: Checkpoint | undefined } | undefined;
    for await (const entry of this.#latestEntries()) {
      if (entry.operation !== 'PUT') {
        if (entry.key === ownCheckpoint) checkpoint = undefined;
        // Agents never delete a snapshot: one that is gone must not let the checkpoint skip its history.
        if (isCheckpointKey(entry.key)) judged.delete(entry.key);
        else judged.set(entry.key, this.#judgeRemoved(entry, definitions));
      } else if (isCheckpointKey(entry.key)) {
        // Another host's checkpoint vouches for what that host saw, not for this one.
        if (entry.key === ownCheckpoint) checkpoint = { entry, checkpoint: this.#parseCheckpoint(entry, streamLastSeq) };
      } else {
        judged.set(entry.key, this.#judge(entry, definitions, streamLastSeq));
      }
    }

    let entityKeys = 0;
    for (const verdict of judged.values()) if (verdict !== 'unknown') entityKeys += 1;
    const fromSeq = checkpoint ? this.#checkpointSeq(checkpoint.entry, checkpoint.checkpoint, entityKeys) : 0;

    const snapshots: LoadedSnapshots['snapshots'] = [];
    const distrusted: EntityRef[] = [];
    for (const [key, verdict] of judged) {
      if (verdict === 'unknown') continue;
      // A save replaces only what recovery used; any other entry is no snapshot worth keeping.
      this.#known.set(key, { revision: verdict.revision, seq: 0 });
      const valid = verdict.snapshot ? { snapshot: verdict.snapshot, revision: verdict.revision } : await this.#olderValid(key, verdict.revision, streamLastSeq);
      const snapshot = valid?.snapshot;
      if (!snapshot) {
        distrusted.push(verdict.ref);
        continue;
      }
      const { definition, ref } = verdict;
      if (snapshot.machine.id !== definition.machine.id || snapshot.machine.version !== definition.version) {
        this.logger.info('snapshot is from another machine version; replaying the stream instead', {
          entity: entityKey(ref),
          snapshot: snapshot.machine,
          current: { id: definition.machine.id, version: definition.version },
        });
        distrusted.push(ref);
        continue;
      }
      if (valid.revision === verdict.revision) this.#known.set(key, { revision: verdict.revision, seq: snapshot.seq });
      snapshots.push({ ref, stored: snapshot });
    }
    return { snapshots, distrusted, checkpoint: fromSeq };
  }

  /**
   * The snapshots of the image the checkpoint names, when there is one and every snapshot in it
   * can be used as it is; otherwise undefined, and the KV is read as before.
   */
  async #loadImage(definitions: Partial<Record<string, MachineDefinition>>, streamLastSeq: number, hostId: string): Promise<LoadedSnapshots | undefined> {
    const entry = await this.kv.get(checkpointKey(hostId));
    if (entry?.operation !== 'PUT') return undefined;
    const checkpoint = this.#checkpointOf(entry, streamLastSeq);
    if (checkpoint?.image === undefined) return undefined;
    const image = ImageRef.safeParse(checkpoint.image);
    const unusable = (reason: string): undefined => {
      this.logger.warn('the checkpoint\'s image of the snapshots cannot be used; reading them one by one', { image: image.data?.name, reason });
      return undefined;
    };
    if (!image.success) return unusable('the checkpoint does not say which image in a way this version reads');
    const entries = await this.images.load(image.data);
    if (typeof entries === 'string') return unusable(entries);
    const snapshots: LoadedSnapshots['snapshots'] = [];
    const known: Array<[string, { revision: number; seq: number }]> = [];
    for (const [key, revision, stored] of entries) {
      const ref = refOfSnapshotKey(key);
      const definition = ref && definitions[ref.kind];
      if (!ref || !definition) return unusable(`${key} names no entity kind`);
      const snapshot = isExactSnapshot(stored) ? stored : StoredSnapshot.safeParse(stored).data;
      if (!snapshot) return unusable(`${key} holds no snapshot`);
      if (snapshot.seq > streamLastSeq) return unusable(`${key} claims to cover sequence ${snapshot.seq}; the stream ends at ${streamLastSeq}`);
      // Written by a clean stop of an older version: the KV says which snapshots this one can use.
      if (snapshot.machine.id !== definition.machine.id || snapshot.machine.version !== definition.version) return unusable(`${key} is from another machine version`);
      snapshots.push(revision > 0 ? { ref, stored: snapshot } : { ref, stored: snapshot, unsaved: true });
      known.push([key, { revision, seq: revision > 0 ? snapshot.seq : 0 }]);
    }
    for (const [key, revision] of known) this.#known.set(key, revision);
    return { snapshots, distrusted: [], checkpoint: checkpoint.seq };
  }

  /** An entry's snapshot, or undefined when the newest one cannot be trusted; 'unknown' for a key that names no entity. */
  #judge(entry: KvEntry, definitions: Partial<Record<string, MachineDefinition>>, streamLastSeq: number): Judged {
    const ref = refOfSnapshotKey(entry.key);
    const definition = ref && definitions[ref.kind];
    if (!ref || !definition) {
      this.#distrust(entry, 'its key names no entity kind');
      return 'unknown';
    }
    return { ref, definition, revision: entry.revision, snapshot: this.#parseSnapshot(entry, streamLastSeq) };
  }

  /**
   * A snapshot deleted or purged by someone else: like one that cannot be trusted, an older
   * revision of it stands in, or the entity's whole history is read. Dropping the key instead left
   * the entity's records before the checkpoint unread.
   */
  #judgeRemoved(entry: KvEntry, definitions: Partial<Record<string, MachineDefinition>>): Judged {
    const ref = refOfSnapshotKey(entry.key);
    const definition = ref && definitions[ref.kind];
    if (!ref || !definition) return 'unknown';
    this.#distrust(entry, `it was ${entry.operation === 'DEL' ? 'deleted' : 'purged'}, which agents never do`);
    return { ref, definition, revision: entry.revision, snapshot: undefined };
  }

  /** Reports a snapshot recovery did not use because the stream disagrees with it. */
  distrust(ref: EntityRef, revision: number, reason: string): void {
    const known = this.#known.get(snapshotKey(ref));
    if (known) known.seq = 0;
    this.quarantine?.add({ source: 'snapshot', seq: revision, subject: snapshotKey(ref), reason });
  }

  #distrust(entry: KvEntry, reason: string): void {
    this.quarantine?.add({ source: 'snapshot', seq: entry.revision, subject: entry.key, reason });
  }

  #reject(entry: KvEntry, reason: string): undefined {
    this.#distrust(entry, reason);
    return undefined;
  }

  /** The last entry of every key (a key saved meanwhile may come again), read in one pass over the bucket. */
  async *#latestEntries(): AsyncGenerator<KvEntry> {
    if ((await this.kv.status()).values === 0) return;
    const watcher = await this.kv.watch({ include: KvWatchInclude.LastValue });
    try {
      for await (const entry of watcher) {
        yield entry;
        if (entry.delta === 0) break;
      }
    } finally {
      watcher.stop();
    }
  }

  /** When the newest revision cannot be trusted: the newest older one that can. */
  async #olderValid(key: string, newestRevision: number, streamLastSeq: number): Promise<{ snapshot: StoredSnapshot; revision: number } | undefined> {
    const history: KvEntry[] = [];
    for await (const entry of await this.kv.history({ key })) history.push(entry);
    for (const entry of history.reverse()) {
      if (entry.revision >= newestRevision || entry.operation !== 'PUT') continue;
      const older = this.#parseSnapshot(entry, streamLastSeq);
      if (older) return { snapshot: older, revision: entry.revision };
    }
    return undefined;
  }

  #parseSnapshot(entry: KvEntry, streamLastSeq: number): StoredSnapshot | undefined {
    const opened = this.#open(entry);
    if ('problem' in opened) return this.#reject(entry, opened.problem);
    const parsed = isExactSnapshot(opened.json) ? { success: true as const, data: opened.json } : StoredSnapshot.safeParse(opened.json);
    if (!parsed.success) return this.#reject(entry, `not a snapshot (${parsed.error.issues[0]?.message})`);
    if (parsed.data.seq > streamLastSeq) {
      return this.#reject(entry, `claims to cover sequence ${parsed.data.seq}; the stream ends at ${streamLastSeq}`);
    }
    return parsed.data;
  }

  #parseCheckpoint(entry: KvEntry, streamLastSeq: number): Checkpoint | undefined {
    const checkpoint = this.#checkpointOf(entry, streamLastSeq);
    if (!checkpoint) this.#distrust(entry, 'a checkpoint that is not sealed, not one, or ahead of the stream: recovery reads the whole stream');
    return checkpoint;
  }

  /** Where recovery may start: after the checkpoint, unless snapshots it vouched for are gone. */
  #checkpointSeq(entry: KvEntry, checkpoint: Checkpoint | undefined, entityKeys: number): number {
    if (!checkpoint) return 0;
    if (checkpoint.keys !== undefined && entityKeys < checkpoint.keys) {
      this.#distrust(entry, `the bucket holds ${entityKeys} entity snapshots where the checkpoint vouched for ${checkpoint.keys}: some were removed without a trace, so recovery reads the whole stream`);
      return 0;
    }
    return checkpoint.seq;
  }

  #checkpointOf(entry: KvEntry, streamLastSeq: number): Checkpoint | undefined {
    const opened = this.#open(entry);
    const parsed = 'json' in opened ? Checkpoint.safeParse(opened.json) : undefined;
    return parsed?.success && parsed.data.seq <= streamLastSeq ? parsed.data : undefined;
  }
}
