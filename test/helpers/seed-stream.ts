// Fills the alert stream with realistic VM histories fast (benchmarks and manager tests): one VM's history is computed through
// the real machine and alert builder, then published for every VM with its own name and task ids.
import { jetstream } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { SEAL_HEADER, type HistorySeal } from '../../src/security/history-seal.ts';
import { initialTransition } from 'xstate';
import { buildAlert } from '../../actors/alert-builder.ts';
import { EIO_ERROR } from '../../actors/drivers/simulated-driver.ts';
import { nextSnapshot } from '../../actors/pure-transition.ts';
import { MACHINES } from '../../machines/index.ts';
import type { VmEvent } from '../../machines/vm.ts';
import { EntityKinds } from '../../src/domain/subjects.ts';

const PLACEHOLDER = 'SEEDVM';

/** 100 events that take a VM from nothing through create, pause/cont cycles and an EIO, ending Up. */
function lifecycle(cycles: number): VmEvent[] {
  const task = (n: number, methodName: string) => ({ id: `${PLACEHOLDER}-t${n}`, methodName, kwargs: { vmId: PLACEHOLDER } });
  const progress = (percentage: number): VmEvent => ({ type: 'WORK_PROGRESS', percentage });
  const events: VmEvent[] = [
    { type: 'CREATE', task: task(0, 'VM.create'), params: { memoryMiB: 1024 } },
    progress(25), progress(50), progress(75), { type: 'WORK_DONE' },
    progress(25), progress(50), progress(75), { type: 'WORK_DONE' },
  ];
  for (let i = 1; i <= cycles; i += 1) {
    events.push({ type: 'PAUSE', task: task(2 * i, 'VM.pause') }, { type: 'WORK_DONE' });
    events.push({ type: 'CONT', task: task(2 * i + 1, 'VM.cont') }, { type: 'WORK_DONE' });
  }
  events.push({ type: 'IO_ERROR', error: EIO_ERROR }, { type: 'CONT', task: task(999, 'VM.cont') }, { type: 'WORK_DONE' });
  return events;
}

/** The JSON bodies of one VM's history, with PLACEHOLDER where its id goes. */
function templateHistory(alertsPerEntity: number): string[] {
  const definition = MACHINES[EntityKinds.VM];
  const cycles = Math.max(0, Math.floor((alertsPerEntity - 12) / 4));
  const subject = `vdsm.VM.${PLACEHOLDER}`;
  let snapshot = initialTransition(definition.machine, { id: PLACEHOLDER })[0];
  const time = new Date('2026-01-01T00:00:00Z');
  return lifecycle(cycles).map((event, index) => {
    const next = nextSnapshot(definition.machine, snapshot, event);
    const alert = buildAlert({ definition, subject, before: snapshot, next, event, revision: index + 1, time });
    snapshot = next;
    return JSON.stringify(alert);
  });
}

export async function seedStream(
  nc: NatsConnection,
  entities: number,
  alertsPerEntity: number,
  progress: (done: number, total: number) => void = () => undefined,
  prefix = 'bench',
  /** Seal as an agent of this installation would, so its agents take the records as history. */
  seal?: HistorySeal,
): Promise<number> {
  const template = templateHistory(alertsPerEntity);
  const js = jetstream(nc);
  const total = entities * template.length;
  const inflight = new Set<Promise<unknown>>();
  let done = 0;
  for (let e = 0; e < entities; e += 1) {
    const id = `${prefix}-${e}`;
    for (const template_ of template) {
      const subject = `vdsm.VM.${id}`;
      const body = template_.replaceAll(PLACEHOLDER, id);
      const sealed = seal ? headers() : undefined;
      sealed?.set(SEAL_HEADER, seal?.seal(subject, body) ?? '');
      const publish: Promise<unknown> = js.publish(subject, body, { headers: sealed }).then(() => {
        inflight.delete(publish);
        done += 1;
        if (done % Math.ceil(total / 10) === 0) progress(done, total);
      });
      inflight.add(publish);
      if (inflight.size >= 4_000) await Promise.race(inflight);
    }
  }
  await Promise.all(inflight);
  return total;
}
