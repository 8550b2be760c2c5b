// The image bucket after a kill -9 in the middle of an image write: the chunks that write stored
// have no description naming them, and a later start purges them — once they are old enough not
// to be another agent's write in progress — without touching any image that is described.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnapshotImages, type ImageEntry } from '../actors/snapshot-image.ts';
import { connectNats } from '../src/nats/connection.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

const BUCKET = 'TEST_IMAGES';
const STREAM = `OBJ_${BUCKET}`;
const entries: ImageEntry[] = [['VM.a', 3, { seq: 7 }], ['VM.b', 0, { seq: 9 }]];

describe('orphaned image chunks', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let images: SnapshotImages;

  beforeAll(async () => {
    server = await NatsTestServer.start();
    nc = await connectNats(server.url, 'image-test');
    images = await SnapshotImages.open(nc, BUCKET, 1);
  });

  afterAll(async () => {
    await nc.drain();
    await server.stop();
  });

  /** The chunk subjects the image stream holds. */
  async function chunkSubjects(): Promise<string[]> {
    const { state } = await (await jetstreamManager(nc)).streams.info(STREAM, { subjects_filter: `$O.${BUCKET}.C.>` });
    return Object.keys(state.subjects ?? {}).sort();
  }

  it('purges the chunks of a write cut short, once they are old enough, and keeps every described image', async () => {
    const first = await images.save('checkpoint.h1', entries);
    const second = await images.save('checkpoint.h2', entries);
    const described = await chunkSubjects();
    expect(described).toHaveLength(2);

    // What a write killed after its chunks and before its description leaves: chunks under a nuid nothing names.
    const js = jetstream(nc);
    const orphan = `$O.${BUCKET}.C.cutshortwrite0000000000`;
    for (let chunk = 0; chunk < 3; chunk += 1) await js.publish(orphan, new Uint8Array(1024));
    expect(await chunkSubjects()).toEqual([...described, orphan].sort());

    // Too young: it could be another agent's image on its way.
    expect(await images.purgeOrphanedChunks(60_000)).toBe(0);
    expect(await chunkSubjects()).toContain(orphan);

    expect(await images.purgeOrphanedChunks(0)).toBe(1);
    expect(await chunkSubjects()).toEqual(described);
    expect(await images.load(first)).toEqual(entries);
    expect(await images.load(second)).toEqual(entries);
    expect(await images.purgeOrphanedChunks(0)).toBe(0);
  });
});
