// Calls through the public API under load: concurrent WebSocket callers each calling VM.create on
// fresh ids, one call at a time, against the agent as it runs (sealed appends, snapshots, the
// shared read that feeds subscribers and the task index). A call answers once its CREATE is
// durable; each VM then runs its simulated create (about nine alerts in all). Beside it, on the
// same server: raw acked JetStream publishes of payloads of an alert's size at the same concurrency.
import { Worker } from 'node:worker_threads';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startAgent } from '../src/agent.ts';
import { connectNats } from '../src/nats/connection.ts';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import type { ApiCallers, ApiCallersReport } from './api-callers.ts';
import { rate, type Figure } from './report.ts';

export type ApiLoadOptions = { callers: number; seconds: number };

export async function benchApiLoad({ callers, seconds }: ApiLoadOptions): Promise<Figure[]> {
  const server = await NatsTestServer.start();
  const agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 } });
  const nc = await connectNats(server.url, 'bench-raw');
  try {
    const token = agent.credentials.operatorToken;
    // Unmeasured first: the JIT, the connections and the agent's consumers warm up.
    await runCallers({ url: agent.api.url, token, callers, seconds: 1, prefix: 'warm' });
    const before = await agent.runtime.alertLog.streamLastSequence();
    const calls = await runCallers({ url: agent.api.url, token, callers, seconds, prefix: 'load' });
    const after = await agent.runtime.alertLog.streamLastSequence();
    const payloadBytes = await averageAlertBytes(nc, agent.runtime.alertLog.stream, before, after);
    const raw = await rawPublishes(nc, callers, seconds, payloadBytes);

    const latencies = [...calls.latencies].sort((a, b) => a - b);
    const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? Number.NaN;
    const registrations = latencies.length / calls.seconds;
    const alerts = (after - before) / calls.seconds;
    const rawRate = raw.count / raw.seconds;
    return [
      { ...rate('VM.create calls answered (durably registered)', latencies.length, calls.seconds), detail: `p50 ${at(50).toFixed(1)} ms, p99 ${at(99).toFixed(1)} ms; ${calls.errors} errors` },
      rate('  alerts stored meanwhile (the calls and their VMs\' progress)', after - before, calls.seconds),
      rate(`raw acked JetStream publishes, ${callers} chains, ${payloadBytes} B each`, raw.count, raw.seconds),
      { name: 'ratio alerts stored / raw publishes', value: alerts / rawRate, unit: '×' },
      { name: 'ratio calls answered / raw publishes', value: registrations / rawRate, unit: '×', detail: `each call brings ~${((after - before) / latencies.length).toFixed(1)} alerts` },
    ];
  } finally {
    await nc.drain();
    await agent.stop();
    await server.stop();
  }
}

function runCallers(setup: ApiCallers): Promise<ApiCallersReport> {
  // The worker loads TypeScript through tsx, as this process does (see benchFanOut).
  const entry = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./api-callers.ts', import.meta.url).href)}); });`;
  const worker = new Worker(entry, { eval: true, workerData: setup });
  return new Promise<ApiCallersReport>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (report: ApiCallersReport) => {
      resolve(report);
      void worker.terminate();
    });
  });
}

/** The mean body size of the alerts the load stored, so the raw side publishes as many bytes. */
async function averageAlertBytes(nc: Awaited<ReturnType<typeof connectNats>>, stream: string, from: number, to: number): Promise<number> {
  const jsm = await jetstreamManager(nc);
  let bytes = 0;
  let count = 0;
  for (let seq = from + 1; seq <= to && count < 200; seq += Math.max(1, Math.floor((to - from) / 200))) {
    const message = await jsm.streams.getMessage(stream, { seq });
    if (message) {
      bytes += message.data.length;
      count += 1;
    }
  }
  return count > 0 ? Math.round(bytes / count) : 512;
}

/** `chains` chains of awaited publishes for `seconds`, on a stream of their own. */
async function rawPublishes(nc: Awaited<ReturnType<typeof connectNats>>, chains: number, seconds: number, bytes: number): Promise<{ count: number; seconds: number }> {
  await (await jetstreamManager(nc)).streams.add({ name: 'BENCH_RAW', subjects: ['bench.raw.>'] });
  const js = jetstream(nc);
  const payload = 'x'.repeat(bytes);
  let count = 0;
  const began = performance.now();
  const until = began + seconds * 1000;
  await Promise.all(
    Array.from({ length: chains }, async (_, chain) => {
      for (let n = 0; performance.now() < until; n += 1) {
        await js.publish(`bench.raw.${chain}.${n}`, payload);
        count += 1;
      }
    }),
  );
  return { count, seconds: (performance.now() - began) / 1000 };
}
