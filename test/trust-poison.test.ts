// Adversarial: garbage and forged records in the alert stream and the snapshot bucket, written
// the way a misconfigured (auth-less) server allows, must never stop a restart, end a live feed,
// touch other entities, or make the agent adopt a VM nobody created.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect as connectRaw, headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotKey } from '../actors/snapshot-store.ts';
import { startAgent, type Agent } from '../src/agent.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { DEFAULT_STREAM } from '../src/nats/alert-stream.ts';
import { historySeal, SEAL_HEADER } from '../src/security/history-seal.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { callError, healthz, openRecordingSocket, untilVmStatus, type RecordingSocket } from './helpers/trust.ts';

const run = promisify(execFile);
const suffix = randomBytes(3).toString('hex');
const id = (name: string) => `${name}-${suffix}`;
const GOOD = [id('good1'), id('good2'), id('good3')];
const POISON = { nonJson: id('p-nonjson'), notAlert: id('p-notalert'), unsealed: id('p-unsealed'), wrongSeal: id('p-wrongseal') };
const GHOST = id('ghost');
/** Poisoned while no agent runs (after its clean-shutdown checkpoint). */
const COLD = { nonJson: id('c-nonjson'), unsealed: id('c-unsealed'), wrongSeal: id('c-wrongseal'), replayed: id('c-replayed') };

let server: NatsTestServer;
let credentialsDir: string;
let agent: Agent;
let host: OpstreamClient;
let raw: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let live: RecordingSocket;
/** The stream sequence of each poisoned entity's first bad record. */
const poisonSeq: Record<string, number> = {};
const before: Record<string, unknown> = {};
let quarantinedBefore = 0;
let _liveSubscriptionId = '';

const startOurAgent = () =>
  startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 }, credentialsDir, snapshotEvery: 3 });

/** The body of the subject's last stored message, as the agent wrote it. */
async function lastBody(subject: string): Promise<{ seq: number; text: string; seal: string | undefined }> {
  const message = await jsm.streams.getMessage(DEFAULT_STREAM, { last_by_subj: subject });
  if (!message) throw new Error(`no message on ${subject}`);
  return { seq: message.seq, text: new TextDecoder().decode(message.data), seal: message.header?.get(SEAL_HEADER) || undefined };
}

async function publish(subject: string, body: string | Uint8Array, seal?: string): Promise<number> {
  const h = seal === undefined ? undefined : headers();
  if (seal !== undefined) h?.set(SEAL_HEADER, seal);
  const ack = await js.publish(subject, body, { headers: h });
  return ack.seq;
}

beforeAll(async () => {
  server = await NatsTestServer.start();
  credentialsDir = mkdtempSync(join(tmpdir(), 'opstream-trust-poison-'));
  agent = await startOurAgent();
  host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  raw = await connectRaw({ servers: server.url, reconnect: false });
  js = jetstream(raw);
  jsm = await jetstreamManager(raw);

  for (const vmId of [...GOOD, ...Object.values(POISON), ...Object.values(COLD)]) await host.vm.create(vmId);
  for (const vmId of [...GOOD, ...Object.values(POISON), ...Object.values(COLD)]) await untilVmStatus(host, vmId, 'Up');
  // A few transitions so snapshots exist (snapshotEvery 3).
  await host.vm.pause(GOOD[1] as string);
  await untilVmStatus(host, GOOD[1] as string, 'Paused');

  live = await openRecordingSocket(agent.api.url, agent.credentials.viewerToken);
  const subscribed = await live.request('Host.subscribe', { filter: 'vdsm.VM.*' });
  expect(subscribed.error).toBeUndefined();
  _liveSubscriptionId = (subscribed.result as { subscriptionId: string }).subscriptionId;
}, 60_000);

afterAll(async () => {
  live?.close();
  await host?.close();
  await agent?.stop();
  await raw?.close();
  await server?.stop();
});

describe('garbage under vdsm.> while an agent runs', () => {
  it('lands in the stream without ending a live subscription', async () => {
    const otherKey = historySeal(randomBytes(32));
    // (a) non-JSON bytes
    poisonSeq[POISON.nonJson] = await publish(`vdsm.VM.${POISON.nonJson}`, new Uint8Array([0xff, 0xfe, 0x00, 0x7b, 0x22]));
    // (b) JSON that is not an alert
    poisonSeq[POISON.notAlert] = await publish(`vdsm.VM.${POISON.notAlert}`, JSON.stringify({ hello: 'world', revision: 99 }));
    // (c) a schema-valid alert without a seal, for an existing VM: its own last alert replayed
    const real = await lastBody(`vdsm.VM.${POISON.unsealed}`);
    const forged = JSON.parse(real.text) as Record<string, unknown>;
    forged['revision'] = (forged['revision'] as number) + 1;
    poisonSeq[POISON.unsealed] = await publish(`vdsm.VM.${POISON.unsealed}`, JSON.stringify(forged));
    // (c') the same for a VM nobody created
    const ghost = JSON.parse(real.text.replaceAll(POISON.unsealed, GHOST)) as Record<string, unknown>;
    ghost['revision'] = 1;
    poisonSeq[GHOST] = await publish(`vdsm.VM.${GHOST}`, JSON.stringify(ghost));
    // (d) a schema-valid alert with a seal made under another key
    const wrong = await lastBody(`vdsm.VM.${POISON.wrongSeal}`);
    const wrongBody = JSON.parse(wrong.text) as Record<string, unknown>;
    wrongBody['revision'] = (wrongBody['revision'] as number) + 1;
    const wrongText = JSON.stringify(wrongBody);
    poisonSeq[POISON.wrongSeal] = await publish(`vdsm.VM.${POISON.wrongSeal}`, wrongText, otherKey.seal(`vdsm.VM.${POISON.wrongSeal}`, wrongText));
    // (e) records under subjects that are no entity's
    await publish('vdsm.Junk.x', 'junk');
    await publish('vdsm.VM.a.b', real.text);

    // A later, legitimate alert still reaches the live subscriber.
    await host.vm.pause(GOOD[0] as string);
    await untilVmStatus(host, GOOD[0] as string, 'Paused');
    const seen = await live.until((frame) => frame.method === 'alert' && frame.params?.['alertName'] === `vdsm.VM.${GOOD[0]}`);
    expect(seen.params?.['seq']).toBeGreaterThan(poisonSeq[POISON.wrongSeal] as number);
    expect(live.frames.filter((frame) => frame.method === 'subscriptionEnded')).toEqual([]);
    // The forged alerts were not delivered as history to the subscriber.
    const forgedSeqs = new Set(Object.values(poisonSeq));
    expect(live.frames.filter((frame) => frame.method === 'alert' && forgedSeqs.has(frame.params?.['seq'] as number))).toEqual([]);
    // The subscription still answers: unsubscribing it is not NoSuchSubscription.
    const again = await live.request('Host.subscribe', { filter: `vdsm.VM.${GOOD[2]}` });
    expect(again.error).toBeUndefined();
  });
});

describe('a restart over the poisoned stream and forged snapshots', () => {
  it('stops cleanly, then the forged snapshots and the deleted last message are planted', async () => {
    for (const vmId of GOOD) before[vmId] = await host.vm.getInfo(vmId);
    quarantinedBefore = (await healthz(agent.api.url)).body.quarantined.count;
    live.close();
    await host.close();
    await agent.stop();

    const kv = await new Kvm(raw).open('OPSTREAM_SNAPSHOTS');
    // good2: an unsealed snapshot claiming it is Up (it is Paused).
    const key2 = snapshotKey({ kind: 'VM', id: GOOD[1] as string });
    const real2 = await kv.get(key2);
    expect(real2?.string()).toBeTruthy();
    const body2 = JSON.parse((real2?.string() ?? '').split('\n').slice(1).join('\n')) as { machine: unknown; snapshot: { value: unknown } };
    body2.snapshot.value = 'Up';
    await kv.put(key2, JSON.stringify(body2));
    // good3: the same body under a seal made with another key.
    const key3 = snapshotKey({ kind: 'VM', id: GOOD[2] as string });
    const other = historySeal(randomBytes(32));
    const forged3 = JSON.stringify({ machine: body2.machine, seq: 1, revision: 1, snapshot: { value: 'Paused', context: {} } });
    await kv.put(key3, `${other.seal(key3, forged3)}\n${forged3}`);
    // A snapshot for the ghost VM, unsealed.
    await kv.put(snapshotKey({ kind: 'VM', id: GHOST }), forged3);

    // Garbage written while no agent runs, after the checkpoint.
    const otherKey = historySeal(randomBytes(32));
    poisonSeq[COLD.nonJson] = await publish(`vdsm.VM.${COLD.nonJson}`, 'not json at all');
    const cold = await lastBody(`vdsm.VM.${COLD.unsealed}`);
    const coldForged = JSON.parse(cold.text) as Record<string, unknown>;
    coldForged['revision'] = (coldForged['revision'] as number) + 1;
    poisonSeq[COLD.unsealed] = await publish(`vdsm.VM.${COLD.unsealed}`, JSON.stringify(coldForged));
    const coldWrong = await lastBody(`vdsm.VM.${COLD.wrongSeal}`);
    const coldWrongBody = JSON.parse(coldWrong.text) as Record<string, unknown>;
    coldWrongBody['revision'] = (coldWrongBody['revision'] as number) + 1;
    const coldWrongText = JSON.stringify(coldWrongBody);
    poisonSeq[COLD.wrongSeal] = await publish(`vdsm.VM.${COLD.wrongSeal}`, coldWrongText, otherKey.seal(`vdsm.VM.${COLD.wrongSeal}`, coldWrongText));

    // A genuine, sealed alert of the entity's own, published again: the seal holds, the revision does not.
    const first = await jsm.direct.getMessage(DEFAULT_STREAM, { seq: 1, next_by_subj: `vdsm.VM.${COLD.replayed}` });
    expect(first?.header.get(SEAL_HEADER)).toBeTruthy();
    poisonSeq[COLD.replayed] = await publish(`vdsm.VM.${COLD.replayed}`, first?.data ?? new Uint8Array(), first?.header.get(SEAL_HEADER));

    // The stream's last message is deleted (a junk record published last).
    const last = await publish(`vdsm.VM.${POISON.nonJson}`, 'trailing junk');
    expect(await jsm.streams.deleteMessage(DEFAULT_STREAM, last)).toBe(true);
    expect((await jsm.streams.info(DEFAULT_STREAM)).state.last_seq).toBe(last);
  });

  it('restarts with the same credentials and becomes ready', async () => {
    agent = await startOurAgent();
    host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    const health = await healthz(agent.api.url);
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('ok');
    // Without a token, no detail.
    expect(health.body.quarantined.recent).toBeUndefined();
  }, 30_000);

  it('counts every planted record in /healthz (stream records and snapshots)', async () => {
    const detailed = await healthz(agent.api.url, agent.credentials.viewerToken);
    const recent = detailed.body.quarantined.recent ?? [];
    const stream = recent.filter((entry) => entry.source === 'stream').map((entry) => `${entry.subject}@${entry.seq}`);
    const expected = [...Object.values(POISON), GHOST].map((vmId) => `vdsm.VM.${vmId}@${poisonSeq[vmId]}`);
    expect({ count: detailed.body.quarantined.count, stream: [...stream].sort() }).toEqual({
      count: expect.any(Number) as number,
      stream: expect.arrayContaining(expected) as string[],
    });
    expect(recent.map((entry) => entry.subject)).toEqual(expect.arrayContaining(['vdsm.Junk.x', 'vdsm.VM.a.b']));
    // The old process counted the live feed's sightings; this one must see at least as many.
    expect(detailed.body.quarantined.count).toBeGreaterThan(quarantinedBefore);
  });

  it('leaves the other entities as they were, and they still take calls', async () => {
    for (const vmId of GOOD) expect(await host.vm.getInfo(vmId)).toEqual(before[vmId]);
    await host.vm.cont(GOOD[0] as string);
    await untilVmStatus(host, GOOD[0] as string, 'Up');
    await host.vm.cont(GOOD[1] as string);
    await untilVmStatus(host, GOOD[1] as string, 'Up');
    await host.vm.pause(GOOD[2] as string);
    await untilVmStatus(host, GOOD[2] as string, 'Paused');
  });

  it.each(Object.entries(POISON))('the %s entity answers EntityDiverged naming the sequence', async (_kind, vmId) => {
    const seq = poisonSeq[vmId] as number;
    const info = await callError(host.vm.getInfo(vmId));
    const call = await callError(host.vm.pause(vmId));
    const again = await callError(host.vm.getInfo(vmId));
    expect({ info, call, again }).toMatchObject({
      info: { code: 108, message: expect.stringContaining(`sequence ${seq}`) },
      call: { code: 108, message: expect.stringContaining(`sequence ${seq}`) },
      again: { code: 108 },
    });
  });

  it.each(Object.entries(COLD))('the %s entity poisoned while no agent ran answers EntityDiverged naming the sequence', async (_kind, vmId) => {
    const seq = poisonSeq[vmId] as number;
    const info = await callError(host.vm.getInfo(vmId));
    const call = await callError(host.vm.pause(vmId));
    expect({ info, call }).toMatchObject({
      info: { code: 108, message: expect.stringContaining(`sequence ${seq}`) },
      call: { code: 108, message: expect.stringContaining(`sequence ${seq}`) },
    });
  });

  it('does not adopt the VM nobody created', async () => {
    const info = await callError(host.vm.getInfo(GHOST));
    expect([100, 108]).toContain(info.code);
    const call = await callError(host.vm.pause(GHOST));
    expect([100, 108]).toContain(call.code);
  });

  it('keeps a live subscription going after more garbage lands', async () => {
    const socket = await openRecordingSocket(agent.api.url, agent.credentials.viewerToken);
    try {
      const subscribed = await socket.request('Host.subscribe', { filter: 'vdsm.VM.*' });
      expect(subscribed.error).toBeUndefined();
      await publish(`vdsm.VM.${GOOD[0]}`, '{not json');
      await publish(`vdsm.VM.${id('fresh-ghost')}`, JSON.stringify({ alertName: 'x' }));
      await host.vm.pause(GOOD[1] as string);
      await socket.until((frame) => frame.method === 'alert' && frame.params?.['alertName'] === `vdsm.VM.${GOOD[1]}`);
      expect(socket.frames.filter((frame) => frame.method === 'subscriptionEnded')).toEqual([]);
    } finally {
      socket.close();
    }
  });

  it.each([POISON.nonJson, POISON.unsealed, POISON.wrongSeal])('the replay CLI reports the divergence of %s without crashing', async (vmId) => {
    const env = { ...process.env, NATS_URL: server.url, OPSTREAM_HISTORY_KEY: join(credentialsDir, 'history.key') };
    const result = await run('node', ['bin/opstream.js', 'replay', `vdsm.VM.${vmId}`, '--verify', '--json'], { env }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
    );
    expect(result.stderr).not.toMatch(/at .*\.ts:\d+|TypeError|SyntaxError|ZodError/);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as { verification: { ok: boolean; divergence?: { seq: number } } };
    expect(report.verification.ok).toBe(false);
    expect(report.verification.divergence?.seq).toBe(poisonSeq[vmId]);
  }, 30_000);

});
