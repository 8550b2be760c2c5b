// The visualizer under load, in headless chromium: 1,000 VMs on the page while ~300 alerts/s are
// appended, and the lag from an alert's append (JetStream's ack) to its sequence appearing in the
// page's DOM. Half the load falls on the rows on screen (the only ones a person — or the DOM —
// sees), the rest is spread over every VM. Also: the page's frame rate and longest frame gap.
import type { EntityActor } from '../actors/entity-actor.ts';
import { EIO_ERROR } from '../actors/drivers/simulated-driver.ts';
import { startAgent } from '../src/agent.ts';
import { EntityKinds } from '../src/domain/subjects.ts';
import { launchBrowser } from '../test/helpers/browser.ts';
import { NatsTestServer } from '../test/helpers/nats-server.ts';
import { requireTool } from '../test/helpers/requirements.ts';
import { percentile, type Figure } from './report.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.timeOrigin + performance.now();

type PageProbe = { seen: [string, number, number][]; frames: number; longestGap: number; longTasks: number; longTaskMs: number };

/** Every change of a row's sequence, timed where it happens, and the page's frame rhythm. */
const PROBE = `(() => {
  const probe = { seen: [], frames: 0, longestGap: 0, longTasks: 0, longTaskMs: 0 };
  // Tasks over 50 ms on the page's main thread: the page's own work, as against a starved machine.
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) { probe.longTasks += 1; probe.longTaskMs += entry.duration; }
  }).observe({ entryTypes: ['longtask'] });
  window.probe = probe;
  new MutationObserver((records) => {
    const at = performance.timeOrigin + performance.now();
    for (const record of records) probe.seen.push([record.target.dataset.name || '', Number(record.target.dataset.seq), at]);
  }).observe(document.getElementById('fleet'), { subtree: true, attributes: true, attributeFilter: ['data-seq'] });
  let last = performance.now();
  const tick = () => {
    const t = performance.now();
    probe.frames += 1;
    probe.longestGap = Math.max(probe.longestGap, t - last);
    last = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})()`;

export async function benchViz(entities = 1_000, alertsPerSecond = 300, seconds = 10): Promise<Figure[]> {
  if (!requireTool('chromium', 'apt-get install chromium').available) return [];
  const server = await NatsTestServer.start();
  const agent = await startAgent({ natsUrl: server.url, root: process.cwd(), port: 0, sim: { stepMs: 0 }, snapshotEvery: 0 });
  const browser = await launchBrowser();
  try {
    const ids = Array.from({ length: entities }, (_, i) => `viz-${String(i).padStart(4, '0')}`);
    const actors: EntityActor[] = [];
    for (let i = 0; i < ids.length; i += 50) {
      await Promise.all(
        ids.slice(i, i + 50).map((vmId) =>
          agent.runtime.call({ kind: EntityKinds.VM, id: vmId }, 'VM.create', { vmId }, (task) => ({ type: 'CREATE', task, params: {} })),
        ),
      );
    }
    for (const vmId of ids) actors.push(await agent.runtime.existing({ kind: EntityKinds.VM, id: vmId }));
    while (actors.some((actor) => actor.view().status !== 'Up')) await sleep(20);

    const page = await browser.page();
    await page.goto(`http://127.0.0.1:${agent.api.port}/?token=${encodeURIComponent(agent.credentials.viewerToken)}`);
    await page.waitForFunction((n) => document.getElementById('fleet-count')?.textContent === `${n} of ${n}`, entities, { timeout: 60_000 });
    const onScreen = await page.$$eval('#fleet .row:not([hidden])', (rows) => rows.map((row) => (row as HTMLElement).dataset['name'] ?? ''));
    // Every change of a row's sequence, timed where it happens, and the page's frame rhythm.
    // A string, not a function: tsx would wrap a function's inner names in a helper the page lacks.
    await page.evaluate(PROBE);

    const appended: { name: string; seq: number; at: number }[] = [];
    const visible = new Set(onScreen);
    const off = actors.map((actor) => actor.onTransition(({ seq }) => appended.push({ name: actor.subject, seq, at: now() })));
    await steadyAlerts(actors, actors.filter((actor) => visible.has(actor.subject)), appended, alertsPerSecond, seconds);
    await sleep(500);
    for (const stop of off) stop();
    const probe = await page.evaluate(() => (window as unknown as { probe: PageProbe }).probe);

    const seenBy = new Map<string, [number, number][]>();
    for (const [name, seq, at] of probe.seen) {
      const list = seenBy.get(name) ?? [];
      list.push([seq, at]);
      seenBy.set(name, list);
    }
    // An alert has appeared once its row shows its sequence or a later one (two alerts of one
    // entity in one frame show only the second).
    const lags: number[] = [];
    let missing = 0;
    for (const { name, seq, at } of appended) {
      if (!visible.has(name)) continue;
      const shown = seenBy.get(name)?.find(([shownSeq]) => shownSeq >= seq);
      if (shown) lags.push(shown[1] - at);
      else missing += 1;
    }
    lags.sort((a, b) => a - b);
    const rate = appended.length / seconds;
    return [
      { name: `append → page DOM lag p50, ${entities} entities on the page`, value: percentile(lags, 50), unit: 'ms', detail: `p99 ${percentile(lags, 99).toFixed(1)} ms, max ${(lags.at(-1) ?? Number.NaN).toFixed(1)} ms over ${lags.length} alerts of the ${visible.size} rows in the DOM (the screenful + overscan); ${missing} never shown` },
      { name: 'alerts appended during the run', value: rate, unit: '/s', detail: `${appended.length} in ${seconds} s, half on the rows on screen` },
      { name: 'page frames per second under that load', value: probe.frames / seconds, unit: '/s', detail: `longest gap between frames ${probe.longestGap.toFixed(1)} ms; ${probe.longTasks} tasks over 50 ms on the page, ${Math.round(probe.longTaskMs)} ms in all` },
    ];
  } finally {
    await browser.close();
    await agent.stop();
    await server.stop();
  }
}

/** Keeps the append rate near `perSecond`: each call is a fault (1 alert) or a continue (several). */
async function steadyAlerts(all: EntityActor[], hot: EntityActor[], appended: unknown[], perSecond: number, seconds: number): Promise<void> {
  const started = performance.now();
  let calls = 0;
  while (performance.now() - started < seconds * 1000) {
    const due = ((performance.now() - started) / 1000) * perSecond;
    for (let budget = 20; appended.length < due && budget > 0; budget -= 1) {
      calls += 1;
      const pool = calls % 2 === 0 && hot.length ? hot : all;
      const actor = pool[Math.floor(Math.random() * pool.length)] as EntityActor;
      const { status } = actor.view();
      if (status === 'Up') void actor.request({ type: 'IO_ERROR', error: EIO_ERROR }).catch(() => undefined);
      else if (status === 'Paused' && !actor.snapshot.context.task) {
        void actor.request({ type: 'CONT', task: { id: `bench-${calls}`, methodName: 'VM.cont', kwargs: { vmId: actor.ref.id } } }).catch(() => undefined);
      }
      await sleep(0);
    }
    await sleep(5);
  }
}
