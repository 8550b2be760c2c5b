// The checkpoint a running agent writes: after a crash, recovery starts after it and still rebuilds
// every entity exactly as a full replay does — records folded after the checkpoint, and records
// someone else wrote, included. Snapshots never go backwards; each host reads only its own checkpoint.
import { randomBytes } from 'node:crypto';
import { Kvm } from '@nats-io/kv';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertLog } from '../actors/alert-log.ts';
import { CheckpointTracker } from '../actors/checkpoint.ts';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { Quarantine } from '../actors/quarantine.ts';
import { recoverEntities, type RecoveryReport } from '../actors/recovery.ts';
import { Runtime } from '../actors/runtime.ts';
import { checkpointKey, snapshotKey, SnapshotStore, type StoredSnapshot } from '../actors/snapshot-store.ts';
import { MACHINES } from '../machines/index.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { createLogger } from '../src/log.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { historySeal } from '../src/security/history-seal.ts';
import { AlertFanout } from '../src/subscriptions/fanout.ts';
import { uniqueId } from './helpers/agent.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

let server: NatsTestServer;
beforeAll(async () => {
  server = await NatsTestServer.start();
});
afterAll(async () => {
  await server?.stop();
});

const logger = createLogger('test');
const seal = historySeal(randomBytes(32));
const vm = (id: string) => ({ kind: EntityKinds.VM, id });

type Agent = { nc: NatsConnection; runtime: Runtime; fanout?: AlertFanout; stream: string; report: RecoveryReport; snapshots?: SnapshotStore };

/**
 * A runtime on its own connection. `follow`: it inspects the stream live, as an agent does
 * (periodic checkpoints need that); the timer is off so the test decides when one is written.
 */
async function startRuntime(options: { bucket?: string; follow?: boolean; hostId?: string } = {}): Promise<Agent> {
  const nc = await connectNats(server.url, 'checkpoint-test');
  const stream = await ensureAlertStream(nc);
  const snapshots = options.bucket ? await SnapshotStore.open(nc, logger, { bucket: options.bucket, seal }) : undefined;
  const driver = new SimulatedDriver({ stepMs: 1 });
  const runtime = await Runtime.start({
    nc,
    stream,
    driver,
    snapshots,
    snapshotEvery: 1_000,
    checkpointEveryMs: 0,
    seal,
    hostId: options.hostId,
  });
  const fanout = options.follow ? await AlertFanout.start(nc, { stream, seal, onRecord: (seq, subject, decode) => runtime.observe(seq, subject, decode) }) : undefined;
  const report = await runtime.recover();
  return { nc, runtime, fanout, stream, report, snapshots };
}

/** As if the process died: no snapshots saved, no checkpoint written at the end. */
async function crash(agent: Agent): Promise<void> {
  agent.runtime.halt();
  await agent.fanout?.stop();
  await agent.nc.close();
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const statusOf = async (agent: Agent, id: string) => (await agent.runtime.existing(vm(id))).view().status;
const untilStatus = (agent: Agent, id: string, status: string) => until(async () => (await statusOf(agent, id)) === status, `${id} is ${status}`);
/** Until the agent's live read has inspected everything in the stream now. */
async function untilInspected(agent: Agent): Promise<number> {
  const last = await agent.runtime.alertLog.streamLastSequence();
  await until(() => (agent.fanout?.position ?? 0) >= last, `the live read reached ${last}`);
  return last;
}

/**
 * An agent brings `up` up and pauses `paused` of them, writes a checkpoint over all of it, does
 * `after`, and crashes. Resolves with the checkpoint's sequence.
 */
async function crashAfterCheckpoint(bucket: string, ids: { up: string[]; paused: string[] }, after?: (agent: Agent) => Promise<void>): Promise<number> {
  const agent = await startRuntime({ bucket, follow: true });
  for (const id of ids.up) await create(agent, id);
  for (const id of ids.up) await untilStatus(agent, id, 'Up');
  for (const id of ids.paused) await pause(agent, id);
  for (const id of ids.paused) await untilStatus(agent, id, 'Paused');
  const checkpointed = await untilInspected(agent);
  await agent.runtime.checkpointNow();
  expect(await agent.runtime.checkpointNow()).toBe(checkpointed);
  await after?.(agent);
  await crash(agent);
  return checkpointed;
}

/** Everything of `key` purged from the bucket's stream, markers too: the KV keeps no trace of it. */
async function vanish(nc: NatsConnection, bucket: string, key: string): Promise<void> {
  await (await jetstreamManager(nc)).streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.${key}` });
}

const create = (agent: Agent, id: string) =>
  agent.runtime.call(vm(id), 'VM.create', { vmId: id }, (task: TaskInfo) => ({ type: 'CREATE', task, params: {} }));
const pause = (agent: Agent, id: string) => agent.runtime.call(vm(id), 'VM.pause', { vmId: id }, (task) => ({ type: 'PAUSE', task }));

describe('periodic checkpoint', () => {
  it('lets a crashed agent start after it, rebuilding every entity as a full replay does', async () => {
    const bucket = 'CKPT_CRASH';
    const first = await startRuntime({ bucket, follow: true });
    const ids = Array.from({ length: 6 }, () => uniqueId());
    await Promise.all(ids.map((id) => create(first, id)));
    await Promise.all(ids.map((id) => untilStatus(first, id, 'Up')));
    const created = await untilInspected(first);

    // First period: the snapshots are behind, so no checkpoint yet; the next saves them.
    expect(await first.runtime.checkpointNow()).toBe(0);
    const checkpoint = await first.runtime.checkpointNow();
    expect(checkpoint).toBe(created);

    // Load after the checkpoint: these transitions are in no snapshot, so no checkpoint may pass them.
    for (const id of ids.slice(0, 3)) await pause(first, id);
    await Promise.all(ids.slice(0, 3).map((id) => untilStatus(first, id, 'Paused')));
    await untilInspected(first);
    expect(await first.runtime.checkpointNow()).toBe(0);

    // Someone else appends to an entity the first agent holds: it folds it live.
    const other = await startRuntime();
    await pause(other, ids[3] ?? '');
    await untilStatus(other, ids[3] ?? '', 'Paused');
    await crash(other);
    const last = await untilInspected(first);
    await until(async () => (await first.runtime.existing(vm(ids[3] ?? ''))).lastSeq === last, 'the foreign record is folded');
    await crash(first);

    // Recovery starts after the checkpoint the crashed agent wrote while it ran.
    const restarted = await startRuntime({ bucket });
    expect(restarted.report.fromSeq).toBe(checkpoint + 1);
    const log = await AlertLog.open(restarted.nc, restarted.stream, seal);
    const full = await recoverEntities(log, undefined, new Quarantine(logger), logger);
    const mine = full.entities.filter(({ ref }) => ids.includes(ref.id));
    expect(mine).toHaveLength(ids.length);
    for (const { ref, state } of mine) {
      const actor = await restarted.runtime.existing(ref);
      expect(actor.divergence).toBeUndefined();
      expect({ value: actor.snapshot.value, context: actor.snapshot.context, lastSeq: actor.lastSeq }).toEqual({
        value: state.snapshot.value,
        context: state.snapshot.context,
        lastSeq: state.lastSeq,
      });
    }
    expect(await Promise.all(ids.map((id) => statusOf(restarted, id)))).toEqual(['Paused', 'Paused', 'Paused', 'Paused', 'Up', 'Up']);
    await crash(restarted);
  });

  it('survives a crash mid-load: recovery from the checkpoint and snapshots equals a full replay', async () => {
    const bucket = 'CKPT_MIDLOAD';
    const agent = await startRuntime({ bucket, follow: true });
    const ids = Array.from({ length: 8 }, () => uniqueId());
    await Promise.all(ids.map((id) => create(agent, id)));
    await Promise.all(ids.map((id) => untilStatus(agent, id, 'Up')));
    await untilInspected(agent);
    await agent.runtime.checkpointNow();
    // Calls in flight, a checkpoint taken among them, more calls, and the crash before they settle.
    const inFlight = ids.slice(0, 4).map((id) => pause(agent, id).catch(() => undefined));
    const checkpoint = await agent.runtime.checkpointNow();
    expect(checkpoint).toBeGreaterThan(0);
    const more = ids.slice(4).map((id) => pause(agent, id).catch(() => undefined));
    agent.runtime.halt();
    await Promise.race([Promise.all([...inFlight, ...more]), new Promise((resolve) => setTimeout(resolve, 500))]);
    await crash(agent);

    // Recovery as a restarted agent does it (snapshots, its checkpoint), and a full replay: the same entities, the same states.
    const nc = await connectNats(server.url, 'checkpoint-test');
    const stream = await ensureAlertStream(nc);
    const log = await AlertLog.open(nc, stream, seal);
    const snapshots = await SnapshotStore.open(nc, logger, { bucket, seal });
    const fromCheckpoint = await recoverEntities(log, snapshots, new Quarantine(logger), logger);
    expect(fromCheckpoint.fromSeq).toBeGreaterThan(1);
    const full = await recoverEntities(log, undefined, new Quarantine(logger), logger);
    const view = (report: RecoveryReport) =>
      report.entities
        .filter(({ ref }) => ids.includes(ref.id))
        .map(({ ref, state }) => ({ id: ref.id, value: state.snapshot.value, context: state.snapshot.context, lastSeq: state.lastSeq, revision: state.revision, divergence: state.divergence }))
        .sort((a, b) => a.id.localeCompare(b.id));
    expect(view(fromCheckpoint)).toEqual(view(full));
    expect(view(full)).toHaveLength(ids.length);
    await nc.close();
  });

  it('rebuilds an entity whose snapshot someone deleted or purged from its history, not by skipping it', async () => {
    const bucket = 'CKPT_REMOVED';
    const [deleted, purged, kept] = [uniqueId(), uniqueId(), uniqueId()];
    const last = await crashAfterCheckpoint(bucket, { up: [deleted, purged, kept], paused: [deleted, purged] });

    // What agents never do: a snapshot deleted (older revisions kept) and one purged (nothing kept).
    const nc = await connectNats(server.url, 'checkpoint-test');
    const kv = await new Kvm(nc).open(bucket);
    await kv.delete(snapshotKey(vm(deleted)));
    await kv.purge(snapshotKey(vm(purged)));
    await nc.close();

    // The checkpoint still lets recovery skip the stream; neither entity is lost for it.
    const restarted = await startRuntime({ bucket });
    expect(restarted.report.fromSeq).toBe(last + 1);
    const statuses = await Promise.all([deleted, purged, kept].map((id) => statusOf(restarted, id)));
    expect(statuses).toEqual(['Paused', 'Paused', 'Up']);
    for (const id of [deleted, purged]) expect((await restarted.runtime.existing(vm(id))).divergence).toBeUndefined();
    expect(restarted.runtime.quarantine.summary.recent.map(({ subject }) => subject)).toEqual(expect.arrayContaining([snapshotKey(vm(deleted)), snapshotKey(vm(purged))]));
    await crash(restarted);
  });

  it('is not trusted once snapshots it vouched for vanished without a trace: the whole stream is read', async () => {
    const bucket = 'CKPT_VANISHED';
    const [gone, kept] = [uniqueId(), uniqueId()];
    await crashAfterCheckpoint(bucket, { up: [gone, kept], paused: [gone] });

    const nc = await connectNats(server.url, 'checkpoint-test');
    await vanish(nc, bucket, snapshotKey(vm(gone)));
    expect(await (await new Kvm(nc).open(bucket)).get(snapshotKey(vm(gone)))).toBeNull();
    await nc.close();

    const restarted = await startRuntime({ bucket });
    expect(restarted.report.fromSeq).toBe(1);
    expect(await Promise.all([gone, kept].map((id) => statusOf(restarted, id)))).toEqual(['Paused', 'Up']);
    expect(restarted.runtime.quarantine.summary.recent.map(({ reason }) => reason)).toEqual(expect.arrayContaining([expect.stringMatching(/removed without a trace/)]));
    await crash(restarted);
  });

  it('replays from its beginning an entity met after the checkpoint with no snapshot, rather than leave it diverged', async () => {
    const bucket = 'CKPT_UNCOVERED';
    const id = uniqueId();
    const last = await crashAfterCheckpoint(bucket, { up: [id], paused: [] }, async (agent) => {
      await pause(agent, id);
      await untilStatus(agent, id, 'Paused');
    });

    // Its snapshot gone without a trace, under a checkpoint that cannot tell (as one written
    // before checkpoints counted snapshots): the records after the checkpoint are all there is.
    const nc = await connectNats(server.url, 'checkpoint-test');
    await vanish(nc, bucket, snapshotKey(vm(id)));
    const kv = await new Kvm(nc).open(bucket);
    await kv.put(checkpointKey(), `${seal.seal(checkpointKey(), JSON.stringify({ seq: last }))}\n${JSON.stringify({ seq: last })}`);
    await nc.close();

    const restarted = await startRuntime({ bucket });
    expect(restarted.report.fromSeq).toBe(last + 1);
    const actor = await restarted.runtime.existing(vm(id));
    expect(actor.divergence).toBeUndefined();
    expect(actor.view().status).toBe('Paused');
    await crash(restarted);
  });

  it('starts a crashed agent\'s recovery after its own checkpoint, never another host\'s', async () => {
    const bucket = 'CKPT_HOSTS';
    const first = await startRuntime({ bucket, follow: true, hostId: 'host-a' });
    const id = uniqueId();
    await create(first, id);
    await untilStatus(first, id, 'Up');
    await untilInspected(first);
    await first.runtime.checkpointNow();
    const checkpoint = await first.runtime.checkpointNow();
    expect(checkpoint).toBeGreaterThan(0);
    await crash(first);

    const sameHost = await startRuntimeReport({ bucket, hostId: 'host-a' });
    expect(sameHost.fromSeq).toBe(checkpoint + 1);
    const otherHost = await startRuntimeReport({ bucket, hostId: 'host-b' });
    expect(otherHost.fromSeq).toBe(1);
    // A checkpoint is no entity's snapshot: nothing in the bucket was distrusted.
    expect(otherHost.quarantined).toBe(0);
  });
});

describe('the image of a clean stop', () => {
  /** A clean stop of an agent holding `ids` (some paused), and a full replay of the stream to compare with. */
  async function stopCleanly(bucket: string, ids: string[]): Promise<void> {
    const agent = await startRuntime({ bucket, follow: true });
    await Promise.all(ids.map((id) => create(agent, id)));
    await Promise.all(ids.map((id) => untilStatus(agent, id, 'Up')));
    await Promise.all(ids.slice(0, 2).map((id) => pause(agent, id)));
    await Promise.all(ids.slice(0, 2).map((id) => untilStatus(agent, id, 'Paused')));
    await untilInspected(agent);
    await agent.runtime.stop();
    await agent.fanout?.stop();
    await agent.nc.close();
  }

  const statesOf = async (agent: Agent, ids: string[]) =>
    Promise.all(ids.map(async (id) => {
      const actor = await agent.runtime.existing(vm(id));
      return { id, value: actor.snapshot.value, context: actor.snapshot.context, lastSeq: actor.lastSeq, divergence: actor.divergence };
    }));

  async function fullReplayOf(ids: string[]) {
    const nc = await connectNats(server.url, 'checkpoint-test');
    const log = await AlertLog.open(nc, await ensureAlertStream(nc), seal);
    const full = await recoverEntities(log, undefined, new Quarantine(logger), logger);
    await nc.close();
    return ids.map((id) => {
      const state = full.entities.find(({ ref }) => ref.id === id)?.state;
      return { id, value: state?.snapshot.value, context: state?.snapshot.context, lastSeq: state?.lastSeq, divergence: state?.divergence };
    });
  }

  /** Starts on `bucket`, checks every one of `ids` is what a full replay makes, crashes: what it reported, and the statuses. */
  async function restartLikeFullReplay(bucket: string, ids: string[]): Promise<{ report: RecoveryReport; statuses: string[] }> {
    const restarted = await startRuntime({ bucket });
    try {
      expect(restarted.report.snapshotsUsed).toBeGreaterThanOrEqual(ids.length);
      expect(await statesOf(restarted, ids)).toEqual(await fullReplayOf(ids));
      return { report: restarted.report, statuses: await Promise.all(ids.map((id) => statusOf(restarted, id))) };
    } finally {
      await crash(restarted);
    }
  }

  const imagesOf = (nc: NatsConnection, bucket: string) => new Objm(nc).open(`${bucket}_IMAGES`);

  it('stands for the KV\'s snapshots at the next start: the KV is not read, and the entities are what a full replay makes', async () => {
    const bucket = 'CKPT_IMAGE';
    const ids = Array.from({ length: 5 }, () => uniqueId());
    await stopCleanly(bucket, ids);
    // Were the KV read, every one of these would be distrusted (older revisions too: the bucket
    // keeps 3) and its history replayed.
    const nc = await connectNats(server.url, 'checkpoint-test');
    const kv = await new Kvm(nc).open(bucket);
    for (const id of ids) for (let revision = 0; revision < 3; revision += 1) await kv.put(snapshotKey(vm(id)), '{not a snapshot');
    await nc.close();

    const { report } = await restartLikeFullReplay(bucket, ids);
    expect(report.alertsReplayed).toBe(0);
  });

  it('is ignored once it is not the one the checkpoint names: a forged image changes nothing', async () => {
    const bucket = 'CKPT_FORGED_IMAGE';
    const ids = Array.from({ length: 4 }, () => uniqueId());
    await stopCleanly(bucket, ids);
    // Someone with write access to the image bucket puts every VM back in Down.
    const nc = await connectNats(server.url, 'checkpoint-test');
    const images = await imagesOf(nc, bucket);
    const image = JSON.parse(new TextDecoder().decode((await images.getBlob(checkpointKey())) ?? new Uint8Array())) as Array<[string, number, StoredSnapshot]>;
    expect(image.length).toBeGreaterThanOrEqual(ids.length);
    const forged = image.map(([key, revision, stored]) => [key, revision, { ...stored, snapshot: { ...stored.snapshot, value: 'Down' } }]);
    await images.putBlob({ name: checkpointKey() }, new TextEncoder().encode(JSON.stringify(forged)));
    await nc.close();

    const { statuses } = await restartLikeFullReplay(bucket, ids);
    expect(statuses).toEqual(['Paused', 'Paused', 'Up', 'Up']);
  });

  it('is ignored when its chunks were altered under the same description: the start falls back to the KV, it does not fail', async () => {
    const bucket = 'CKPT_ALTERED_IMAGE';
    const ids = Array.from({ length: 4 }, () => uniqueId());
    await stopCleanly(bucket, ids);
    // The object's description (name, digest, size) stays; its one chunk is replaced by a copy with a byte changed.
    const nc = await connectNats(server.url, 'checkpoint-test');
    const images = await imagesOf(nc, bucket);
    const info = await images.info(checkpointKey());
    const original = (await images.getBlob(checkpointKey())) ?? new Uint8Array();
    expect(info?.chunks).toBe(1);
    const altered = Uint8Array.from(original);
    const at = new TextDecoder().decode(original).indexOf('"Up"');
    altered.set(new TextEncoder().encode('"Ux"'), at);
    const chunks = `$O.${bucket}_IMAGES.C.${info?.nuid}`;
    await (await jetstreamManager(nc)).streams.purge(`OBJ_${bucket}_IMAGES`, { filter: chunks });
    await jetstream(nc).publish(chunks, altered);
    await nc.close();

    await restartLikeFullReplay(bucket, ids);
  });

  it('holds a state the KV may not: the entity is saved again before a checkpoint passes it, so a later crash loses nothing', async () => {
    const bucket = 'CKPT_LATE_IMAGE';
    const id = uniqueId();
    const first = await startRuntime({ bucket, follow: true });
    await create(first, id);
    await untilStatus(first, id, 'Up');
    await untilInspected(first);
    // A request that held its actor before the stop lands after the entity's KV save and before
    // the image: the image has it, the KV does not.
    const actor = await first.runtime.existing(vm(id));
    const store = first.snapshots as SnapshotStore;
    const save = store.save.bind(store);
    let late: Promise<unknown> | undefined;
    store.save = async (ref, stored) => {
      const saved = await save(ref, stored);
      if (ref.id === id && !late) await (late = actor.request({ type: 'IO_ERROR', error: [5, 'EIO'] }, { deadline: false }));
      return saved;
    };
    await first.runtime.stop();
    await first.fanout?.stop();
    await first.nc.close();
    expect(late).toBeDefined();

    // From the image, then periodic checkpoints, then a crash: the next start reads the KV.
    const second = await startRuntime({ bucket, follow: true });
    expect(await statusOf(second, id)).toBe('Paused');
    const other = uniqueId();
    await create(second, other);
    await untilStatus(second, other, 'Up');
    await untilInspected(second);
    await second.runtime.checkpointNow();
    expect(await second.runtime.checkpointNow()).toBeGreaterThan(0);
    await crash(second);

    const third = await startRuntime({ bucket });
    expect(await statesOf(third, [id, other])).toEqual(await fullReplayOf([id, other]));
    expect(await statusOf(third, id)).toBe('Paused');
    await crash(third);
  });
  it('is given up when its chunks are gone: the start reads the KV instead of waiting for them forever', async () => {
    const bucket = 'CKPT_CHUNKLESS_IMAGE';
    const ids = Array.from({ length: 3 }, () => uniqueId());
    await stopCleanly(bucket, ids);
    const nc = await connectNats(server.url, 'checkpoint-test');
    const info = await (await imagesOf(nc, bucket)).info(checkpointKey());
    await (await jetstreamManager(nc)).streams.purge(`OBJ_${bucket}_IMAGES`, { filter: `$O.${bucket}_IMAGES.C.${info?.nuid}` });
    await nc.close();

    // The object's description and the sealed checkpoint remain; the client would wait for the chunks forever.
    await restartLikeFullReplay(bucket, ids);
  }, 30_000);
});

/** Starts a runtime, recovers it, and crashes it again: what recovery reported. */
async function startRuntimeReport(options: { bucket: string; hostId: string }): Promise<{ fromSeq: number; quarantined: number }> {
  const nc = await connectNats(server.url, 'checkpoint-test');
  const stream = await ensureAlertStream(nc);
  const snapshots = await SnapshotStore.open(nc, logger, { bucket: options.bucket, seal });
  const runtime = await Runtime.start({ nc, stream, driver: new SimulatedDriver({ stepMs: 1 }), snapshots, checkpointEveryMs: 0, seal, hostId: options.hostId });
  const report = await runtime.recover();
  const quarantined = runtime.quarantined.count;
  runtime.halt();
  await nc.close();
  return { fromSeq: report.fromSeq, quarantined };
}

describe('snapshot saves', () => {
  it('never replace a snapshot covering more of the stream', async () => {
    const bucket = 'CKPT_CAS';
    const nc = await connectNats(server.url, 'checkpoint-test');
    const definition = MACHINES[EntityKinds.VM];
    const ref = vm(uniqueId());
    const snapshot = (seq: number): StoredSnapshot => ({
      machine: { id: definition.machine.id, version: definition.version },
      seq,
      revision: seq,
      snapshot: { value: 'Up', context: { seq } },
    });
    const newer = await SnapshotStore.open(nc, logger, { bucket, seal });
    const older = await SnapshotStore.open(nc, logger, { bucket, seal });
    expect(await older.save(ref, snapshot(5))).toBe(true);
    expect(await newer.save(ref, snapshot(10))).toBe(true);
    // `older` last saw revision 1 (seq 5): its save of seq 7 finds seq 10 stored and keeps it.
    expect(await older.save(ref, snapshot(7))).toBe(false);
    expect(await newer.save(ref, snapshot(8))).toBe(false);
    const stored = async () => (await (await SnapshotStore.open(nc, logger, { bucket, seal })).loadAll(MACHINES, 100)).snapshots.find((s) => s.ref.id === ref.id)?.stored.seq;
    expect(await stored()).toBe(10);
    expect(await older.save(ref, snapshot(12))).toBe(true);
    expect(await stored()).toBe(12);
    await nc.close();
  });
});

describe('the checkpoint tracker', () => {
  it('never claims a record whose entity\'s stored snapshot may not cover it', () => {
    const tracker = new CheckpointTracker();
    expect(tracker.checkpoint(10)).toBe(10);
    tracker.mark('VM.a', 11);
    tracker.mark('VM.b', 12);
    expect(tracker.checkpoint(20)).toBe(10);
    expect(tracker.laggingAt(11)).toEqual(['VM.a']);
    // a's snapshot was taken at 11, but a record at 15 was folded while it was being saved.
    tracker.mark('VM.a', 15);
    tracker.saved('VM.a', 11);
    expect(tracker.checkpoint(20)).toBe(11);
    tracker.saved('VM.b', 12);
    expect(tracker.checkpoint(20)).toBe(11);
    tracker.saved('VM.a', 15);
    expect(tracker.checkpoint(20)).toBe(20);
    // A record of an entity no snapshot of this agent covers holds the checkpoint below it for good.
    tracker.uncovered(18);
    tracker.mark('VM.a', 25);
    tracker.saved('VM.a', 25);
    expect(tracker.checkpoint(30)).toBe(17);
  });
});
