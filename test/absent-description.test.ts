// An image or Gluster volume that is Absent says so: operationDescription "Absent", not the
// "Deleting" it used to borrow. That changes what clients see, so the machines' versions were
// bumped: histories recorded by the old version (which showed "Deleting") still replay, while the
// same records claiming today's version diverge — replay compares what clients saw per version.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialTransition } from 'xstate';
import { operationInfoOf, stateMeta } from '../machines/entity.ts';
import { MACHINES } from '../machines/index.ts';
import type { StoredAlert } from '../actors/alert-log.ts';
import { initialReplayState, replayOne, type ReplayState } from '../actors/replay.ts';
import { OPERATION_DESCRIPTIONS } from '../src/domain/operation-info.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import type { TaskInfo } from '../src/domain/task.ts';
import { startTestAgent, uniqueId, type TestAgent } from './helpers/agent.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

let server: NatsTestServer;
let agent: TestAgent;
beforeAll(async () => {
  server = await NatsTestServer.start();
  agent = await startTestAgent(server.url);
});
afterAll(async () => {
  await agent?.close();
  await server?.stop();
});

describe('Absent is described as Absent', () => {
  it('is one of the agreed operationDescription values', () => {
    expect(OPERATION_DESCRIPTIONS).toContain('Absent');
  });

  for (const kind of [EntityKinds.Image, EntityKinds.GlusterVolume]) {
    it(`${kind} before it exists`, () => {
      const { machine } = MACHINES[kind];
      const [snapshot] = initialTransition(machine, { id: 'x' });
      const meta = stateMeta(snapshot);
      expect(meta.status).toBe('Absent');
      expect(operationInfoOf(meta, snapshot.context as never)).toMatchObject({ operationDescription: 'Absent', stageDescription: '', stage: [1, 1] });
    });
  }

  it('an image after its delete, in the stream; old-version records of the same history still replay', async () => {
    const id = uniqueId('img');
    const ref = { kind: EntityKinds.Image, id };
    await agent.runtime.call(ref, 'Image.create', { imageId: id, size: 1024 }, (task: TaskInfo) => ({ type: 'CREATE', task, size: 1024, baseImageId: null }));
    const actor = await agent.runtime.existing(ref);
    await expect.poll(() => actor.view().status, { timeout: 10_000, interval: 10 }).toBe('OK');
    await agent.runtime.call(ref, 'Image.delete', { imageId: id }, (task: TaskInfo) => ({ type: 'DELETE', task }));
    await expect.poll(() => actor.view().status, { timeout: 10_000, interval: 10 }).toBe('Absent');
    await actor.settle();

    const records: StoredAlert[] = [];
    for await (const record of agent.runtime.alertLog.alerts(actor.subject)) records.push(record);
    const last = records.at(-1)!.alert;
    const definition = MACHINES[EntityKinds.Image];
    expect(last).toMatchObject({ status: 'Absent', machine: { version: definition.version } });
    expect(last.operationInfo.operationDescription).toBe('Absent');

    // What the version before showed for the same transitions.
    const asBefore = (claimedVersion: number): StoredAlert[] =>
      records.map(({ seq, alert }) => ({
        seq,
        alert: {
          ...alert,
          machine: { ...alert.machine, version: claimedVersion },
          operationInfo: alert.status === 'Absent' ? { ...alert.operationInfo, operationDescription: 'Deleting', stageDescription: 'deleted' } : alert.operationInfo,
        },
      }));
    const replay = (history: StoredAlert[]): ReplayState =>
      history.reduce((state, record) => replayOne(definition, state, record), initialReplayState(definition, id));
    expect(replay(records).divergence).toBeUndefined();
    expect(replay(asBefore(definition.version - 1)).divergence).toBeUndefined();
    expect(replay(asBefore(definition.version)).divergence?.reason).toMatch(/needs a new machine version/);
  });
});
