// An installation that predates sealing keeps its history: the first start with a new history key
// adopts what the stream holds, and only records written after that must carry a seal.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent } from '../src/agent.ts';
import { ErrorCodes } from '../src/domain/errors.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { connect } from '../src/index.ts';
import { startTestAgent, uniqueId } from './helpers/agent.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

let server: NatsTestServer;
beforeAll(async () => {
  server = await NatsTestServer.start();
});
afterAll(() => server?.stop());

it('adopts the unsealed history of an upgrade, and still quarantines unsealed records written after it', async () => {
  // The old version: a runtime that writes no seals.
  const old = await startTestAgent(server.url);
  await old.runtime.recover();
  const id = uniqueId('legacy');
  await old.runtime.call({ kind: EntityKinds.VM, id }, 'VM.create', { vmId: id }, (task) => ({ type: 'CREATE', task, params: {} }));
  const legacy = await old.runtime.existing({ kind: EntityKinds.VM, id });
  while (legacy.view().status !== 'Up') await new Promise((resolve) => setTimeout(resolve, 5));
  // What the old runtime wrote is sealed with its own key; strip that: rewrite it as an old version would.
  const records = [];
  for await (const { alert } of old.runtime.alertLog.alerts(`vdsm.VM.${id}`)) records.push(alert);
  await old.close();
  const upgraded = uniqueId('upgraded');
  const writer = await startTestAgent(server.url);
  const js = jetstream(writer.nc);
  for (const alert of records) await js.publish(`vdsm.VM.${upgraded}`, JSON.stringify({ ...alert, alertName: `vdsm.VM.${upgraded}` }));

  const credentialsDir = mkdtempSync(join(tmpdir(), 'opstream-credentials-'));
  const agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 }, credentialsDir });
  const host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
  try {
    expect(await host.vm.getInfo(upgraded)).toMatchObject({ status: 'Up' });
    // After the upgrade an unsealed record is a forgery again.
    const forged = uniqueId('forged');
    const { seq } = await js.publish(`vdsm.VM.${forged}`, JSON.stringify({ ...records[0], alertName: `vdsm.VM.${forged}` }));
    await host.close();
    await agent.stop();
    const restarted = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 }, credentialsDir });
    const again = await connect(restarted.api.url, { token: restarted.credentials.operatorToken });
    expect(await again.vm.getInfo(upgraded)).toMatchObject({ status: 'Up' });
    await expect(again.vm.getInfo(forged)).rejects.toMatchObject({ code: ErrorCodes.EntityDiverged, message: expect.stringContaining(`sequence ${seq}`) });
    await again.close();
    await restarted.stop();
  } finally {
    await host.close().catch(() => undefined);
    await writer.close();
  }
});
