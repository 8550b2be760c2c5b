import { jetstream } from '@nats-io/jetstream';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import { connectNats } from '../src/nats/connection.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
const server = await NatsTestServer.start();
const nc = await connectNats(server.url, 'x');
await ensureAlertStream(nc);
const js = jetstream(nc);
const a = await js.publish('vdsm.VM.a', 'one', { msgID: 'm1', expect: { lastSubjectSequence: 0 } });
const b = await js.publish('vdsm.VM.a', 'two', { msgID: 'm2', expect: { lastSubjectSequence: a.seq } });
try {
  const again = await js.publish('vdsm.VM.a', 'one', { msgID: 'm1', expect: { lastSubjectSequence: 0 } });
  console.log('retry of m1 with its old expectation:', again);
} catch (e) { console.log('retry of m1 conflicted:', (e as Error).message); }
console.log(a.seq, b.seq);
await nc.drain(); await server.stop();
