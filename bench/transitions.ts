// Durable transitions/s through the runtime vs raw JetStream publishes/s of the same payloads.
// Both sides run the same shape of load: one chain of awaited appends per VM, all VMs at once.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { jetstream } from '@nats-io/jetstream';
import { historySeal } from '../src/security/history-seal.ts';
import { SimulatedDriver } from '../actors/drivers/simulated-driver.ts';
import { Runtime } from '../actors/runtime.ts';
import type { Alert } from '../src/domain/alert.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { ensureAlertStream } from '../src/nats/alert-stream.ts';
import { connectNats } from '../src/nats/connection.ts';
import type { NatsConnection } from '@nats-io/transport-node';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import { rate, type Figure } from './report.ts';

export type TransitionsBenchOptions = { vms: number; pauseCycles: number; rounds?: number };

type Round = { transitions: number; runtimeSeconds: number; rawSeconds: number; guardedSeconds: number };

export async function benchTransitions({ vms, pauseCycles, rounds = 7 }: TransitionsBenchOptions): Promise<Figure[]> {
  const server = await NatsTestServer.start();
  const nc = await connectNats(server.url, 'bench');
  try {
    const stream = await ensureAlertStream(nc);
    // Ticks of 0 ms: the driver answers at once, so the runtime and JetStream are what is measured.
    // Sealed and recovered, as an agent's runtime is.
    const seal = historySeal(randomBytes(32));
    const runtime = await Runtime.start({ nc, stream, driver: new SimulatedDriver({ stepMs: 0 }), seal });
    await runtime.recover();
    // A warm-up on other VMs, unmeasured: the raw side runs after the runtime's, on a client and
    // JIT already warm, so the runtime's side must not be measured cold either.
    await Promise.all(Array.from({ length: vms }, (_, i) => driveVm(runtime, `warm-${i}`, 1)));

    // Rounds of (runtime, raw, guarded raw), each on fresh VMs: on a shared machine one round's
    // ratio swings with whatever else runs; the median of side-by-side rounds swings less.
    const results: Round[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      const ids = Array.from({ length: vms }, (_, i) => `bench-r${round}-${i}`);
      const profiler = round === 1 ? await startProfile() : undefined;
      const started = performance.now();
      await Promise.all(ids.map((id) => driveVm(runtime, id, pauseCycles)));
      const runtimeSeconds = (performance.now() - started) / 1000;
      await profiler?.();
      results.push({ runtimeSeconds, ...(await publishRaw(runtime, nc, ids)) });
    }
    await runtime.stop();

    const ratios = results.map((result) => result.rawSeconds / result.runtimeSeconds);
    const median = [...results].sort((a, b) => a.rawSeconds / a.runtimeSeconds - b.rawSeconds / b.runtimeSeconds)[Math.floor(results.length / 2)] as Round;
    const { transitions } = median;
    const which = `median of ${rounds} rounds by ratio`;
    return [
      rate(`durable transitions through the runtime (${which})`, transitions, median.runtimeSeconds),
      rate('raw JetStream publishes, same payloads and concurrency', transitions, median.rawSeconds),
      rate('  the same with msg id + expected-last-subject-sequence', transitions, median.guardedSeconds),
      {
        name: 'ratio runtime / raw',
        value: median.rawSeconds / median.runtimeSeconds,
        unit: '×',
        detail: `rounds: ${ratios.map((ratio) => ratio.toFixed(2)).join(', ')}`,
      },
    ];
  } finally {
    await nc.drain();
    await server.stop();
  }
}

/**
 * The runtime's payloads of `ids`, published again per VM on fresh subjects through plain
 * js.publish, one chain of awaited publishes per VM, all VMs at once: plain, then with the
 * runtime's guard headers.
 */
async function publishRaw(runtime: Runtime, nc: NatsConnection, ids: string[]): Promise<Omit<Round, 'runtimeSeconds'>> {
  let transitions = 0;
  const perVm = new Map<string, string[]>();
  for (const id of ids) {
    const subject = `vdsm.VM.raw-${id}`;
    const payloads: string[] = [];
    for await (const { alert } of runtime.alertLog.alerts(`vdsm.VM.${id}`)) {
      payloads.push(JSON.stringify({ ...alert, alertName: subject } satisfies Alert));
    }
    perVm.set(subject, payloads);
    transitions += payloads.length;
  }
  const js = jetstream(nc);
  const publishAll = async (prefix: string, guarded: boolean): Promise<number> => {
    const began = performance.now();
    await Promise.all(
      [...perVm].map(async ([subject, payloads]) => {
        const target = subject.replace('vdsm.VM.', `vdsm.VM.${prefix}`);
        let last = 0;
        for (const [i, payload] of payloads.entries()) {
          const options = guarded ? { msgID: `${target}:${i}`, expect: { lastSubjectSequence: last } } : undefined;
          last = (await js.publish(target, payload, options)).seq;
        }
      }),
    );
    return (performance.now() - began) / 1000;
  };
  const rawSeconds = await publishAll('plain-', false);
  const guardedSeconds = await publishAll('guarded-', true);
  return { transitions, rawSeconds, guardedSeconds };
}

/** Create, then pause/cont cycles, each awaited until the VM reports the state (the fleet bench drives VMs the same way). */
export async function driveVm(runtime: Runtime, id: string, pauseCycles: number): Promise<void> {
  const vm = { kind: EntityKinds.VM, id };
  await runtime.call(vm, 'VM.create', { vmId: id, memoryMiB: 512 }, (task) => ({ type: 'CREATE', task, params: { memoryMiB: 512 } }));
  await untilStatus(runtime, vm, 'Up');
  for (let cycle = 0; cycle < pauseCycles; cycle += 1) {
    await runtime.call(vm, 'VM.pause', { vmId: id }, (task) => ({ type: 'PAUSE', task }));
    await untilStatus(runtime, vm, 'Paused');
    await runtime.call(vm, 'VM.cont', { vmId: id }, (task) => ({ type: 'CONT', task }));
    await untilStatus(runtime, vm, 'Up');
  }
}

async function untilStatus(runtime: Runtime, vm: { kind: typeof EntityKinds.VM; id: string }, status: string): Promise<void> {
  const actor = await runtime.existing(vm);
  if (actor.view().status === status) return;
  await new Promise<void>((resolve) => {
    const off = actor.onTransition(({ alert }) => {
      if (alert.status !== status) return;
      off();
      resolve();
    });
  });
}


/**
 * BENCH_CPU_PROFILE=<file>: a CPU profile of the runtime's phase alone (not start-up, not the raw
 * side) — what `node --cpu-prof` of the whole run drowns in module loading.
 */
async function startProfile(): Promise<(() => Promise<void>) | undefined> {
  const file = process.env['BENCH_CPU_PROFILE'];
  if (!file) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}
