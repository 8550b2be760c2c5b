// Calls through the public API under load: concurrent WebSocket callers each calling VM.create on
// fresh ids, one call at a time, against the agent as it runs (sealed appends, snapshots, the
// shared read that feeds subscribers and the task index). A call answers once its CREATE is
// durable; each VM then runs its simulated create (about nine alerts in all). Beside it, on the
// same server: raw acked JetStream publishes of payloads of an alert's size, one chain per caller
// (the agent has more appends in flight than that: every VM it created appends on its own).
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { startAgent } from '../src/agent.ts';
import { connectNats } from '../src/nats/connection.ts';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import type { ApiCallers, ApiCallersReport } from './api-callers.ts';
import { percentile, type Figure } from './report.ts';
import { tsWorker } from './ts-worker.ts';

export type ApiLoadOptions = { callers: number; seconds: number; rounds: number };

type Round = { calls: ApiCallersReport; alerts: number; raw: number; guarded: number };

export async function benchApiLoad({ callers, seconds, rounds }: ApiLoadOptions): Promise<Figure[]> {
  const server = await NatsTestServer.start();
  const agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 5 } });
  const nc = await connectNats(server.url, 'bench-raw');
  try {
    const token = agent.credentials.operatorToken;
    const log = agent.runtime.alertLog;
    // Unmeasured first: the JIT, the connections and the agent's consumers warm up.
    await runCallers({ url: agent.api.url, token, callers, seconds: 1, prefix: 'warm' });
    await (await jetstreamManager(nc)).streams.add({ name: 'BENCH_RAW', subjects: ['bench.raw.>'] });
    // Rounds of (API, raw, guarded raw), each side run alone: the raw side waits until the VMs the
    // calls created have settled, so it does not share the machine with their tail.
    const results: Round[] = [];
    let payloadBytes = 0;
    for (let round = 1; round <= rounds; round += 1) {
      await untilSettled(log);
      const before = await log.streamLastSequence();
      const calls = await runCallers({ url: agent.api.url, token, callers, seconds, prefix: `load-${round}` });
      const during = await log.streamLastSequence();
      payloadBytes ||= await averageAlertBytes(nc, log.stream, before, during);
      await untilSettled(log);
      const raw = await rawPublishes(nc, `plain${round}`, callers, seconds, payloadBytes, false);
      const guarded = await rawPublishes(nc, `guarded${round}`, callers, seconds, payloadBytes, true);
      results.push({ calls, alerts: (during - before) / calls.seconds, raw, guarded });
    }

    const byRatio = [...results].sort((a, b) => a.alerts / a.raw - b.alerts / b.raw);
    const median = byRatio[Math.floor(byRatio.length / 2)] as Round;
    const latencies = [...median.calls.latencies].sort((a, b) => a - b);
    const answered = latencies.length / median.calls.seconds;
    const which = `median of ${rounds} rounds by ratio`;
    return [
      { name: `VM.create calls answered, durably registered (${which})`, value: answered, unit: '/s', detail: `p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms; ${median.calls.errors} errors` },
      { name: "  alerts stored meanwhile (the calls and their VMs' progress)", value: median.alerts, unit: '/s', detail: `~${(median.alerts / answered).toFixed(1)} alerts per call` },
      { name: `raw acked JetStream publishes, ${callers} chains, ${payloadBytes} B each`, value: median.raw, unit: '/s' },
      { name: '  the same with msg id + expected-last-subject-sequence', value: median.guarded, unit: '/s' },
      { name: 'ratio alerts stored / raw publishes', value: median.alerts / median.raw, unit: '×', detail: `rounds: ${results.map((r) => (r.alerts / r.raw).toFixed(2)).join(', ')}` },
      { name: 'ratio calls answered / raw publishes', value: answered / median.raw, unit: '×', detail: 'at most 1 / alerts per call' },
    ];
  } finally {
    await nc.drain();
    await agent.stop();
    await server.stop();
  }
}

/** Until the stream's last sequence stops moving: the VMs of the last round have reached Up. */
async function untilSettled(log: { streamLastSequence(): Promise<number> }): Promise<void> {
  let last = await log.streamLastSequence();
  for (;;) {
    await sleep(300);
    const now = await log.streamLastSequence();
    if (now === last) return;
    last = now;
  }
}

function runCallers(setup: ApiCallers): Promise<ApiCallersReport> {
  const worker = tsWorker(new URL('./api-callers.ts', import.meta.url), setup);
  return new Promise<ApiCallersReport>((resolve, reject) => {
    worker.once('error', reject);
    // A worker that ends without its report (a caller that threw) must fail the benchmark, not hang it.
    worker.once('exit', (code) => reject(new Error(`the API callers' thread exited (${code}) without a report`)));
    worker.once('message', (report: ApiCallersReport) => {
      resolve(report);
      void worker.terminate();
    });
  });
}

/** The mean body size of the alerts the load stored, so the raw side publishes as many bytes. */
async function averageAlertBytes(nc: NatsConnection, stream: string, from: number, to: number): Promise<number> {
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

/** `chains` chains of awaited publishes for `seconds` on the raw stream, plain or with the runtime's guard headers. */
async function rawPublishes(nc: NatsConnection, prefix: string, chains: number, seconds: number, bytes: number, guarded: boolean): Promise<number> {
  const js = jetstream(nc);
  const payload = 'x'.repeat(bytes);
  let count = 0;
  const began = performance.now();
  const until = began + seconds * 1000;
  await Promise.all(
    Array.from({ length: chains }, async (_, chain) => {
      // A chain per subject, as an entity appends to its own: each publish guarded by the last.
      const subject = `bench.raw.${prefix}.${chain}`;
      let last = 0;
      for (let n = 0; performance.now() < until; n += 1) {
        const options = guarded ? { msgID: `${subject}:${n}`, expect: { lastSubjectSequence: last } } : undefined;
        last = (await js.publish(subject, payload, options)).seq;
        count += 1;
      }
    }),
  );
  return count / ((performance.now() - began) / 1000);
}
