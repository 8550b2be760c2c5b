// The task index rebuilt at start from the stream's last hour: what a retried jobId and
// Task.getInfo answer from after a restart. It reads only the task fields of each record, so it
// must still take only what an agent sealed, and only a task the schema accepts — its shortcut
// past the schema must not let through what the schema refuses, nor refuse what it accepts.
import { randomBytes } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskRegistry } from '../actors/task-registry.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import { historySeal, SEAL_HEADER } from '../src/security/history-seal.ts';
import { NatsTestServer } from './helpers/nats-server.ts';

const seal = historySeal(randomBytes(32));
const quiet = { info: () => undefined, warn: () => undefined };

/** The fields of an alert the index reads, for a task that just ended. */
function endedAlert(vm: string, task: unknown): Record<string, unknown> {
  return {
    alertName: `vdsm.VM.${vm}`,
    time: new Date().toISOString(),
    task,
    taskStatus: 'finished',
    event: { type: 'WORK_DONE' },
    operationInfo: { percentage: -1, lastError: [0, ''] },
  };
}

describe('the task index rebuilt from the stream', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let stream: string;

  beforeAll(async () => {
    server = await NatsTestServer.start();
    nc = await connectNats(server.url, 'task-registry-test');
    stream = await ensureAlertStream(nc);
    const js = jetstream(nc);
    const append = async (alert: Record<string, unknown>, sealWith: (subject: string, body: string) => string | undefined) => {
      const subject = alert['alertName'] as string;
      const body = JSON.stringify(alert);
      const value = sealWith(subject, body);
      const sealed = headers();
      if (value !== undefined) sealed.set(SEAL_HEADER, value);
      await js.publish(subject, body, { headers: sealed });
    };
    const sealed = (subject: string, body: string) => seal.seal(subject, body);
    await append(endedAlert('a', { id: 'exact', methodName: 'VM.pause', kwargs: { vmId: 'a' }, flowId: 'f-1' }), sealed);
    await append(endedAlert('b', { id: 'extra-key', methodName: 'VM.pause', kwargs: { vmId: 'b' }, note: 'stripped by the schema' }), sealed);
    await append(endedAlert('c', { id: '', methodName: 'VM.pause', kwargs: {} }), sealed);
    await append(endedAlert('d', { id: 'kwargs-not-object', methodName: 'VM.pause', kwargs: ['vmId'] }), sealed);
    await append(endedAlert('e', { id: 'empty-job', methodName: 'VM.pause', kwargs: {}, jobId: '' }), sealed);
    await append(endedAlert('f', { id: 'unsealed', methodName: 'VM.pause', kwargs: {} }), () => undefined);
    await append(endedAlert('g', { id: 'padded-seal', methodName: 'VM.pause', kwargs: {} }), (subject, body) => `${seal.seal(subject, body)}=`);
    await append(endedAlert('h', { id: 'other-key', methodName: 'VM.pause', kwargs: {} }), (subject, body) => historySeal(randomBytes(32)).seal(subject, body));
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('indexes sealed tasks the schema accepts, as the schema gives them, and nothing else', async () => {
    const registry = new TaskRegistry(60 * 60 * 1000, () => new Date());
    registry.startLoading(nc, stream, quiet, seal);
    await registry.ready;

    expect(registry.get('exact')).toMatchObject({ alertName: 'vdsm.VM.a', status: 'finished', percentage: 100 });
    expect(registry.get('exact')?.task).toEqual({ id: 'exact', methodName: 'VM.pause', kwargs: { vmId: 'a' }, flowId: 'f-1' });
    // The shortcut declines it; the schema accepts it without the unknown key.
    expect(registry.get('extra-key')?.task).toEqual({ id: 'extra-key', methodName: 'VM.pause', kwargs: { vmId: 'b' } });
    for (const refused of ['', 'kwargs-not-object', 'empty-job']) expect(registry.get(refused), refused).toBeUndefined();
    for (const forged of ['unsealed', 'padded-seal', 'other-key']) expect(registry.get(forged), forged).toBeUndefined();
  });
});
