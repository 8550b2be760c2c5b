// A clean stop's every snapshot in one object. Loading 100,000 snapshots one KV entry at a time
// (a message, its headers, a seal and a parse each) was half of a big restart; one object is one
// read, one digest and one parse. The image only speeds things up: the clean stop's sealed
// checkpoint names it by its SHA-256, so an image that is missing, replaced or altered is ignored
// and recovery takes the KV's snapshots as before.
import { Objm, setSha256Backend, type ObjectStore } from '@nats-io/obj';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { isUnreachable } from '../src/nats/errors.ts';

/** What a checkpoint says of the image written with it. */
export const ImageRef = z.object({
  name: z.string().min(1),
  digest: z.string().min(1),
  entities: z.number().int().min(0),
  /** Bytes: reading stops past it, so an object swapped under the name cannot fill the agent's memory. */
  size: z.number().int().min(0),
});
export type ImageRef = z.infer<typeof ImageRef>;

/** One entity: its snapshot key, the KV revision its snapshot had (0: unknown), and the snapshot. */
export type ImageEntry = [key: string, revision: number, stored: unknown];

/**
 * How old chunks no image names must be before they are purged: younger ones may be an image
 * another agent of the fleet is writing now, whose description is not stored yet.
 */
export const ORPHANED_CHUNK_MIN_AGE_MS = 10 * 60_000;

export class SnapshotImages {
  private constructor(
    private readonly store: ObjectStore,
    private readonly jsm: JetStreamManager,
    private readonly bucket: string,
  ) {}

  static async open(nc: NatsConnection, bucket: string, replicas: number): Promise<SnapshotImages> {
    // Node's hashing rather than the client's portable JavaScript one: an image is tens of megabytes.
    setSha256Backend('native');
    return new SnapshotImages(await new Objm(nc).create(bucket, { replicas }), await jetstreamManager(nc), bucket);
  }

  /**
   * Purges chunks no image names. A write of an image cut short by a kill -9 leaves its chunks
   * behind with no description to find them by (the client purges them itself after any failure
   * it lives through), one image's worth per killed stop. Resolves with the writes purged.
   */
  async purgeOrphanedChunks(minAgeMs = ORPHANED_CHUNK_MIN_AGE_MS): Promise<number> {
    const named = new Set((await this.store.list()).map((info) => info.nuid));
    const stream = `OBJ_${this.bucket}`;
    const prefix = `$O.${this.bucket}.C.`;
    const { state } = await this.jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
    let purged = 0;
    for (const subject of Object.keys(state.subjects ?? {})) {
      if (named.has(subject.slice(prefix.length))) continue;
      const last = await this.jsm.streams.getMessage(stream, { last_by_subj: subject });
      if (!last || Date.now() - last.time.getTime() < minAgeMs) continue;
      await this.jsm.streams.purge(stream, { filter: subject });
      purged += 1;
    }
    return purged;
  }

  /** Stores `entries` as the image of `name` (replacing the previous one) and says how to find it again. */
  async save(name: string, entries: ImageEntry[]): Promise<ImageRef> {
    const info = await this.store.putBlob({ name }, Buffer.from(JSON.stringify(entries)));
    return { name, digest: info.digest, entities: entries.length, size: info.size };
  }

  /**
   * The entries of the image `ref` names, or why not: gone, replaced since (another digest), or
   * altered in the bucket (the client's check of the chunks against the digest fails).
   */
  async load(ref: ImageRef): Promise<ImageEntry[] | string> {
    try {
      return await this.#read(ref);
    } catch (error) {
      // A server that is away is worth waiting for; anything else (chunks that fail their digest
      // make the client's stream error) only means the image is not to be used.
      if (isUnreachable(error)) throw error;
      return `it cannot be read whole (${String(error)})`;
    }
  }

  async #read(ref: ImageRef): Promise<ImageEntry[] | string> {
    const object = await this.store.get(ref.name);
    if (!object) return 'it is gone';
    // Settled either way here: the client may also reject it when its read fails, and a rejection
    // nobody awaits would end the process.
    const failed = object.error.then((error) => error ?? undefined, (error: unknown) => (error instanceof Error ? error : new Error(String(error))));
    if (object.info.digest !== ref.digest || object.info.size !== ref.size) return 'it was replaced since the checkpoint';
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = object.data.getReader();
    let whole = false;
    try {
      for (;;) {
        // Chunks that are gone (purged, lost in a partial restore) are waited for forever by the client.
        const next = await withinMs(reader.read(), CHUNK_WAIT_MS);
        if (next === undefined) return `no chunk came for ${CHUNK_WAIT_MS / 1000} s after ${size} of its ${ref.size} bytes`;
        if (next.done) break;
        size += next.value.length;
        if (size > ref.size) return `it holds more than the ${ref.size} bytes the checkpoint says`;
        chunks.push(next.value);
      }
      whole = true;
    } finally {
      // Given up half-way: the client's consumer is stopped rather than left reading.
      if (!whole) void reader.cancel().catch(() => undefined);
    }
    const failure = await failed;
    if (failure) return `it cannot be read whole (${failure.message})`;
    let entries: unknown;
    try {
      entries = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (error) {
      return `not JSON (${(error as Error).message})`;
    }
    const shaped = Array.isArray(entries) && entries.length === ref.entities && entries.every(isEntry);
    return shaped ? (entries as ImageEntry[]) : 'it is not a list of snapshots as long as the checkpoint says';
  }
}

/** How long a read of the image waits for its next chunk before it gives the image up. */
const CHUNK_WAIT_MS = 10_000;

/** `promise`'s value, or undefined when `ms` pass first. */
async function withinMs<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const isEntry = (entry: unknown): boolean =>
  Array.isArray(entry) && entry.length === 3 && typeof entry[0] === 'string' && Number.isSafeInteger(entry[1]);
