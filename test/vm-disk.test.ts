// A VM's disks as sub-object alerts (`vdsm.VM.<vmId>.Disk.<diskId>`), through the API on a real
// nats-server: a migrating VM's disks report the storage side with rising progress, globs and
// regexps select exactly the alerts they name (read through the NATS subjects they narrow to),
// a restart rebuilds the disks — failing one whose migration the restart ended — and the replay
// debugger verifies a disk's history.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { vmDiskMachine, type VmDiskEvent } from '../machines/vm-disk.ts';
import { startAgent, type Agent, type AgentOptions } from '../src/agent.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import type { Step } from '../src/replay/debugger.ts';
import { uniqueId } from './helpers/agent.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

const run = promisify(execFile);
let server: NatsTestServer;
let credentialsDir: string;
let agent: Agent | undefined;
let host: OpstreamClient | undefined;
const clients: OpstreamClient[] = [];

const FAST: AgentOptions['sim'] = { stepMs: 5 };
/** Quick everywhere but the memory copy, which runs long enough to restart the agent during it. */
const SLOW_COPY: AgentOptions['sim'] = {
  timings: {
    prepare: { steps: 1, stepMs: 5 },
    powerUp: { steps: 1, stepMs: 5 },
    prepareMigration: { steps: 1, stepMs: 5 },
    copyMemory: { steps: 1_000, stepMs: 20 },
  },
};

async function startOne(sim: AgentOptions['sim']): Promise<OpstreamClient> {
  agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim, credentialsDir });
  credentialsDir = agent.credentials.dir;
  host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  return host;
}

async function stopOne(): Promise<void> {
  await host?.close();
  await agent?.stop();
  host = undefined;
  agent = undefined;
}

beforeAll(async () => {
  server = await NatsTestServer.start();
  credentialsDir = mkdtempSync(join(tmpdir(), 'opstream-credentials-'));
});
afterAll(async () => {
  for (const client of clients) await client.close();
  await stopOne();
  await server?.stop();
});

type Info = { status: string; operationInfo: { operationDescription: string; percentage: number; lastError: [number, string]; extraData: Record<string, unknown> } };
const vmInfo = (client: OpstreamClient, vmId: string) => client.call<Info>('VM.getInfo', { vmId });

async function until<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function createUp(client: OpstreamClient, vmId: string, disks: Array<Record<string, string>>): Promise<void> {
  await client.call('VM.create', { vmId, disks });
  await until(`${vmId} up`, () => vmInfo(client, vmId), (info) => info.status === 'Up');
}

const historyOf = async (client: OpstreamClient, alertName: string) =>
  (await client.call<{ steps: Step[] }>('History.get', { alertName })).steps.map((step) => ({ ...step, alertName }));

/** Every alert `filter` delivers from the stream's start up to and including sequence `last`. */
async function delivered(filter: string, filterType: 'glob' | 'regexp', last: number): Promise<Array<{ alertName: string; seq: number }>> {
  if (!agent) throw new Error('no agent');
  const client = await connect(agent.api.url, { token: agent.credentials.viewerToken });
  clients.push(client);
  // `since` makes the agent read the stored alerts through the NATS subjects the filter narrows to.
  await client.subscribe(filter, filterType, 0);
  const got: Array<{ alertName: string; seq: number }> = [];
  while (got.at(-1)?.seq !== last) {
    const alert = await client.waitForEvent(filter, 10_000, filterType);
    got.push(alert);
    if (alert.seq > last) throw new Error(`${filter} delivered past ${last}: ${JSON.stringify(got.map((a) => [a.alertName, a.seq]))}`);
  }
  return got.map(({ alertName, seq }) => ({ alertName, seq }));
}

describe('the disk machine', () => {
  it('moves only on reports of the operation it is in, so a copy cannot mix into a migration', () => {
    let [snapshot] = initialTransition(vmDiskMachine, { id: 'web.d1' });
    const send = (event: VmDiskEvent) => ([snapshot] = transition(vmDiskMachine, snapshot, event));
    send({ type: 'STORAGE_MIGRATION_STARTED', operation: 'VM.web', vmId: 'web', dstHost: 'h2' });
    send({ type: 'STORAGE_COPY_STARTED', operation: 'Storage.Image.c', vmId: 'web', imageId: 'd1', dstImageId: 'c' });
    send({ type: 'STORAGE_PROGRESS', operation: 'Storage.Image.c', percentage: 90 });
    send({ type: 'STORAGE_DONE', operation: 'Storage.Image.c' });
    expect(snapshot.value).toBe('Migrating');
    expect(snapshot.context.percentage).toBe(0);
    send({ type: 'STORAGE_PROGRESS', operation: 'VM.web', percentage: 40 });
    expect(snapshot.context.percentage).toBe(40);
    send({ type: 'STORAGE_FAILED', operation: 'VM.web', error: [132, 'destination gone'] });
    expect(snapshot.value).toBe('Failed');
    expect(snapshot.context).toMatchObject({ lastError: [132, 'destination gone'], operation: null, percentage: -1 });
    send({ type: 'STORAGE_COPY_STARTED', operation: 'Storage.Image.c', vmId: 'web', imageId: 'd1', dstImageId: 'c' });
    expect(snapshot.value).toBe('Copying');
  });
});

describe("a VM's disks report the storage side of its migration", () => {
  const web = uniqueId('web');
  const db = uniqueId('db');
  const image = uniqueId('img');
  const names = {
    web: `vdsm.VM.${web}`,
    webD1: `vdsm.VM.${web}.Disk.d1`,
    webD2: `vdsm.VM.${web}.Disk.d2`,
    db: `vdsm.VM.${db}`,
    dbDisk: `vdsm.VM.${db}.Disk.${image}`,
  };
  let migrateTaskId = '';
  let all: Array<Step & { alertName: string }> = [];

  beforeAll(async () => {
    const client = await startOne(FAST);
    await client.call('Image.create', { imageId: image, size: 1 << 20 });
    await until('image ok', () => client.call<Info>('Image.getInfo', { imageId: image }), (info) => info.status === 'OK');
    // One disk known by its own id, one VM whose disk is an Image entity (its id names the disk).
    await createUp(client, web, [{ diskId: 'd1' }, { diskId: 'd2' }]);
    await createUp(client, db, [{ imageId: image }]);
    await client.call('VM.migrate', { vmId: db, dstHost: 'h2' });
    await until('db migrated', () => vmInfo(client, db), (info) => info.status === 'Down');
    ({ taskId: migrateTaskId } = await client.call<{ taskId: string }>('VM.migrate', { vmId: web, dstHost: 'h3' }));
    await until('web migrated', () => vmInfo(client, web), (info) => info.status === 'Down');
    all = (await Promise.all(Object.values(names).map((name) => historyOf(client, name)))).flat().sort((a, b) => a.seq - b.seq);
  });

  it('reports each disk on vdsm.VM.<vmId>.Disk.<diskId> with rising progress, then Ready', () => {
    for (const name of [names.webD1, names.webD2]) {
      const steps = all.filter((step) => step.alertName === name);
      const migrating = steps.filter((step) => step.operationInfo.operationDescription === 'Migration');
      expect(migrating.length, name).toBeGreaterThanOrEqual(3);
      const percentages = migrating.map((step) => step.operationInfo.percentage);
      expect(percentages[0]).toBe(0);
      for (let i = 1; i < percentages.length; i += 1) expect(percentages[i], `${name} ${percentages.join(',')}`).toBeGreaterThan(percentages[i - 1] as number);
      for (const step of migrating) {
        expect(step.status).toBe('Locked');
        expect(step.operationInfo.stage).toEqual([1, 2]);
        expect(step.operationInfo.extraData).toMatchObject({ vmId: web, dstHost: 'h3', taskId: migrateTaskId, state: 'migrating' });
      }
      const last = steps.at(-1);
      expect(last?.operationInfo).toMatchObject({ operationDescription: 'Ready', stage: [1, 1], lastError: [0, ''] });
      expect(last?.operationInfo.extraData).not.toHaveProperty('taskId');
    }
    const dbDisk = all.filter((step) => step.alertName === names.dbDisk);
    expect(dbDisk[0]?.operationInfo.extraData).toMatchObject({ vmId: db, imageId: image, dstHost: 'h2' });
  });

  it("puts each disk's end in the stream before its VM's", () => {
    const vmDown = all.find((step) => step.alertName === names.web && step.status === 'Down' && step.seq > 0 && step.event.type === 'WORK_DONE');
    const disksDone = all.filter((step) => step.alertName.startsWith(`${names.web}.Disk.`) && step.event.type === 'STORAGE_DONE');
    expect(disksDone).toHaveLength(2);
    for (const done of disksDone) expect(done.seq).toBeLessThan(vmDown?.seq ?? 0);
  });

  it('lets globs and regexps select exactly the VMs, the disks, or one VM’s disks', async () => {
    const cases: Array<[string, 'glob' | 'regexp', string[]]> = [
      ['vdsm.VM.*', 'glob', [names.web, names.db]],
      ['vdsm.VM.>', 'glob', Object.values(names)],
      ['vdsm.VM.*.Disk.*', 'glob', [names.webD1, names.webD2, names.dbDisk]],
      [`vdsm.VM.${web}.Disk.*`, 'glob', [names.webD1, names.webD2]],
      [`vdsm\\.VM\\.${web}\\.Disk\\..*`, 'regexp', [names.webD1, names.webD2]],
      [`vdsm\\.VM\\.${web}\\.Disk\\.(d2|d9)`, 'regexp', [names.webD2]],
      [`vdsm\\.VM\\.(${web}|${db})`, 'regexp', [names.web, names.db]],
    ];
    for (const [filter, filterType, selected] of cases) {
      const expected = all.filter((step) => selected.includes(step.alertName)).map(({ alertName, seq }) => ({ alertName, seq }));
      const got = await delivered(filter, filterType, expected.at(-1)?.seq ?? -1);
      expect(got, filter).toEqual(expected);
    }
  });

  it('lists the disk kind and the disks for the visualizer', async () => {
    const client = host as OpstreamClient;
    const kinds = await client.call<Array<{ kind: string; id: string; alertPattern: string; entities: number }>>('Machine.list');
    expect(kinds.find((kind) => kind.kind === 'VM.Disk')).toMatchObject({ id: 'vmDisk', alertPattern: 'vdsm.VM.*.Disk.*', entities: 3 });
    const listed = await client.call<Array<{ alertName: string; kind: string; id: string; status: string }>>('History.list', { filter: `vdsm\\.VM\\.${web}(\\.Disk\\..*)?`, filterType: 'regexp' });
    expect(listed.map(({ alertName, kind, id }) => ({ alertName, kind, id })).sort((a, b) => a.alertName.localeCompare(b.alertName))).toEqual([
      { alertName: names.web, kind: 'VM', id: web },
      { alertName: names.webD1, kind: 'VM.Disk', id: `${web}.d1` },
      { alertName: names.webD2, kind: 'VM.Disk', id: `${web}.d2` },
    ]);
  });

  it("shows a copy of an image that is a running VM's disk on that disk, and none for an unused image", async () => {
    const client = host as OpstreamClient;
    const source = uniqueId('src');
    const vmId = uniqueId('cp');
    await client.call('Image.create', { imageId: source, size: 1 << 20 });
    await until('source ok', () => client.call<Info>('Image.getInfo', { imageId: source }), (info) => info.status === 'OK');
    await createUp(client, vmId, [{ imageId: source }]);
    const copy = uniqueId('copy');
    const { taskId } = await client.call<{ taskId: string }>('Image.copy', { imageId: source, dstImageId: copy });
    await until('copy ok', () => client.call<Info>('Image.getInfo', { imageId: copy }), (info) => info.status === 'OK');
    const disk = await historyOf(client, `vdsm.VM.${vmId}.Disk.${source}`);
    expect(disk.map((step) => step.event.type)).toEqual(['STORAGE_COPY_STARTED', 'STORAGE_PROGRESS', 'STORAGE_DONE']);
    expect(disk[0]?.operationInfo).toMatchObject({ operationDescription: 'Copying', stage: [1, 2], percentage: 0, extraData: { vmId, imageId: source, dstImageId: copy, taskId } });
    expect(disk[1]?.operationInfo.percentage).toBeGreaterThan(0);
    expect(disk[2]?.operationInfo).toMatchObject({ operationDescription: 'Ready', stage: [1, 1] });
    const destination = await historyOf(client, `vdsm.Storage.Image.${copy}`);
    expect(disk[2]?.seq).toBeLessThan(destination.at(-1)?.seq ?? 0);

    // A copy of that copy reads no VM's disk: no disk entity comes of it.
    const before = await client.call<unknown[]>('History.list', { filter: 'vdsm.VM.*.Disk.*' });
    await client.call('Image.copy', { imageId: copy, dstImageId: uniqueId('copy2') });
    await until('second copy', () => client.call<Array<{ status: string }>>('History.list', { filter: 'vdsm.Storage.Image.*' }), (images) => images.every((image) => image.status === 'OK'));
    expect(await client.call<unknown[]>('History.list', { filter: 'vdsm.VM.*.Disk.*' })).toHaveLength(before.length);
    await client.call('VM.destroy', { vmId });
    await until(`${vmId} down`, () => vmInfo(client, vmId), (info) => info.status === 'Down');
  });

  it('refuses a VM definition whose disks share an id or name none', async () => {
    const client = host as OpstreamClient;
    await expect(client.call('VM.create', { vmId: uniqueId('dup'), disks: [{ diskId: 'a' }, { diskId: 'a' }] })).rejects.toThrow(/two disks have the same id/);
    await expect(client.call('VM.create', { vmId: uniqueId('none'), disks: [{}] })).rejects.toThrow(/a disk needs an imageId or a diskId/);
    await expect(client.call('VM.create', { vmId: uniqueId('dot'), disks: [{ diskId: 'a.b' }] })).rejects.toThrow(/must not contain '\.'/);
  });

  it('`opstream replay <disk> --verify` reproduces a disk’s history on today’s machine', async () => {
    const env = { ...process.env, NATS_URL: server.url, OPSTREAM_HISTORY_KEY: join(credentialsDir, 'history.key') };
    const { stdout } = await run('node', ['bin/opstream.js', 'replay', names.webD1, '--verify'], { env });
    expect(stdout).toMatch(new RegExp(`${names.webD1.replaceAll('.', '\\.')}: \\d+ alerts`));
    expect(stdout).toMatch(/STORAGE_MIGRATION_STARTED +∅ → Migrating/);
    expect(stdout).toMatch(/STORAGE_DONE +Migrating → Idle/);
    expect(stdout).toMatch(/verified: today's machine \(vmDisk v1\) reproduces all \d+ alerts/);
  });

  it('rebuilds the disks after a restart, and fails a disk whose migration the restart ended', async () => {
    await stopOne();
    const client = await startOne(SLOW_COPY);
    // Recovered from snapshots and the stream: the finished disks are where they were.
    const disks = await client.call<Array<{ alertName: string; status: string; operationInfo: Info['operationInfo'] }>>('History.list', { filter: 'vdsm.VM.*.Disk.*' });
    expect(disks.map((disk) => disk.alertName).filter((name) => !name.includes('.cp-')).sort()).toEqual([names.dbDisk, names.webD1, names.webD2].sort());
    expect(disks).toHaveLength(4);
    for (const disk of disks) expect(disk.operationInfo).toMatchObject({ operationDescription: 'Ready', lastError: [0, ''] });

    const mid = uniqueId('mid');
    await createUp(client, mid, [{ diskId: 'm1' }]);
    await client.subscribe(`vdsm.VM.${mid}.Disk.m1`);
    await client.call('VM.migrate', { vmId: mid, dstHost: 'h2' });
    let event = await client.waitForEvent(`vdsm.VM.${mid}.Disk.m1`, 10_000);
    while (event.operationInfo.percentage <= 0) event = await client.waitForEvent(`vdsm.VM.${mid}.Disk.m1`, 10_000);
    expect(event.operationInfo.operationDescription).toBe('Migration');

    await stopOne();
    const after = await startOne(FAST);
    const failed = await until(
      'mid disk failed',
      async () => (await after.call<Array<{ alertName: string; status: string; operationInfo: Info['operationInfo'] }>>('History.list', { filter: `vdsm\\.VM\\.${mid}(\\.Disk\\..*)?`, filterType: 'regexp' })),
      (listed) => listed.length === 2 && listed.every((entity) => entity.operationInfo.lastError[0] !== 0),
    );
    const disk = failed.find((entity) => entity.alertName.endsWith('.Disk.m1'));
    expect(disk?.operationInfo).toMatchObject({ operationDescription: 'Failed', stage: [1, 1] });
    expect(disk?.operationInfo.lastError[0]).toBe(900);
    expect(disk?.operationInfo.lastError[1]).toMatch(/agent restarted during "copying data"/);
    expect((await vmInfo(after, mid)).status).toBe('Up');
  });
});
