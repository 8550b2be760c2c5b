// The visualizer in a real browser (Debian's chromium through playwright-core) against a real
// agent and nats-server: it loads clean, shows entities as the API creates them, lights the
// state a call moves an entity to without a reload, scrubs back through history, verifies it,
// and carries on by itself after the agent restarts.
import type { Page } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent.ts';
import { connect, type OpstreamClient } from '../src/index.ts';
import { uniqueId } from './helpers/agent.ts';
import { launchBrowser, screenshot, type TestBrowser } from './helpers/browser.ts';
import { publishDivergedHistory } from './helpers/diverged-history.ts';
import { NatsTestServer } from './helpers/nats-server.ts';
import { requireTool } from './helpers/requirements.ts';

const chromium = requireTool('chromium', 'apt-get install chromium');

describe.skipIf(!chromium.available)('visualizer in chromium', () => {
  let server: NatsTestServer;
  let agent: Agent;
  let host: OpstreamClient;
  let browser: TestBrowser;
  let page: Page;
  const problems: string[] = [];
  const vmId = uniqueId('viz');
  const row = (id: string) => `.row[data-name="vdsm.VM.${id}"]`;
  const lit = (path: string) => `#diagram .state.active[data-path="${path}"]`;
  // One installation across the restarts below: the page's token and the history key stay valid.
  const credentialsDir = mkdtempSync(join(tmpdir(), 'opstream-credentials-'));
  const startOurAgent = (port: number) =>
    startAgent({ natsUrl: server.url, root: process.cwd(), port, sim: { stepMs: 40 }, snapshotEvery: 0, credentialsDir });

  beforeAll(async () => {
    server = await NatsTestServer.start();
    agent = await startOurAgent(0);
    host = await connect(agent.api.url, { token: agent.credentials.operatorToken });
    browser = await launchBrowser();
    page = await browser.page();
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await host?.close();
    await agent?.stop();
    await server?.stop();
  });

  it('loads with no console errors and goes live', async () => {
    // The viewer token on the page URL is passed on to the WebSocket (auth on /rpc reads it there):
    // the page only reads, so a viewer's token is all it needs.
    const sockets: string[] = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));
    const token = encodeURIComponent(agent.credentials.viewerToken);
    await page.goto(`http://127.0.0.1:${agent.api.port}/?token=${token}`);
    await page.waitForSelector('#connection[data-state="open"]');
    await page.waitForSelector('.kind-tab[data-kind="Gluster.Volume"]');
    expect(sockets[0]).toBe(`ws://127.0.0.1:${agent.api.port}/rpc?token=${token}`);
    expect(problems).toEqual([]);
  });

  it('shows an entity created through the API', async () => {
    await host.vm.create(vmId);
    await page.waitForSelector(row(vmId));
    await page.waitForSelector(`${row(vmId)} .desc:text-is("Running")`);
  });

  it('moves the lit state to Paused when VM.pause runs, without a reload', async () => {
    await page.evaluate(() => Object.assign(window, { sameDocument: true }));
    await page.click(row(vmId));
    await page.waitForSelector(lit('Up'));
    await host.vm.pause(vmId);
    await page.waitForSelector(lit('Paused'));
    expect(await page.locator('#diagram .state.active').count()).toBe(1);
    expect(await page.locator('#diagram .edge.active[data-event="WORK_DONE"][data-target="Paused"]').count()).toBe(1);
    await expect.poll(() => page.textContent(`${row(vmId)} .desc`)).toBe('Paused');
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    await screenshot(page, 'viz-paused');
  });

  it('scrubs back to earlier states and verifies the history', async () => {
    await page.focus('#scrub');
    await page.keyboard.press('Home');
    await page.waitForSelector(lit('WaitForLaunch'));
    expect(await page.locator(lit('Paused')).count()).toBe(0);
    expect(await page.textContent('#entity-status')).toContain('WaitForLaunch');
    expect(await page.getAttribute('#detail', 'data-mode')).toBe('history');
    // Forward, one alert at a time, until the VM was Up: the state before the pause.
    for (let i = 0; i < 30 && (await page.locator(lit('Up')).count()) === 0; i += 1) await page.keyboard.press('ArrowRight');
    expect(await page.locator(lit('Up')).count()).toBe(1);
    await screenshot(page, 'viz-scrubbed');
    await page.click('#verify');
    await page.waitForSelector('#verdict[data-tone="ok"]');
    expect(await page.textContent('#verdict')).toMatch(/reproduces all \d+ alerts/);
    await page.click('#live');
    await page.waitForSelector(lit('Paused'));
  });

  it('filters by glob or regexp through the agent and says why a filter is refused', async () => {
    const second = uniqueId('viz-b');
    await host.vm.create(second);
    await page.waitForSelector(row(second));
    await page.click('h1');
    await page.keyboard.press('/');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('filter');
    await page.selectOption('#filter-type', 'regexp');
    await page.fill('#filter', `vdsm\\.VM\\.(${vmId}|nothing)`);
    await page.keyboard.press('Enter');
    await page.waitForSelector(row(second), { state: 'detached' });
    await page.waitForSelector(row(vmId));
    expect(await page.locator('#fleet .row:not([hidden])').count()).toBe(1);
    await page.fill('#filter', 'vdsm.VM.(');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#filter-error:not([hidden])');
    expect(await page.textContent('#filter-error')).toMatch(/regexp/i);
    expect(await page.locator(row(vmId)).count()).toBe(1);
    await page.selectOption('#filter-type', 'glob');
    await page.fill('#filter', 'vdsm.VM.*');
    await page.keyboard.press('Enter');
    await page.waitForSelector(row(second));
    expect(await page.isHidden('#filter-error')).toBe(true);
  });

  it('is driven by the keyboard', async () => {
    await page.click('h1');
    await page.keyboard.press('f');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('fleet');
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    // Rows sort by id: viz-<pid>-1 comes before viz-b-<pid>-<n>.
    await page.waitForSelector('#entity-title:text-matches("viz-b-")');
    expect(await page.getAttribute('.row.cursor', 'aria-selected')).toBe('true');
  });

  it('opens an entity from the URL and marks where its history diverges from today\'s machine', async () => {
    const diverged = uniqueId('viz-diverged');
    const seq = await publishDivergedHistory(agent.nc, diverged, agent.runtime.seal);
    const other = await browser.page();
    await other.goto(`http://127.0.0.1:${agent.api.port}/?token=${encodeURIComponent(agent.credentials.viewerToken)}#vdsm.VM.${diverged}`);
    await other.waitForSelector(`#timeline tr[data-seq="${seq}"]`);
    await other.keyboard.press('v');
    await other.waitForSelector(`#timeline tr.diverged[data-seq="${seq}"]`);
    expect(await other.getAttribute('#verdict', 'data-tone')).toBe('error');
    expect(await other.textContent('#verdict')).toMatch(new RegExp(`diverges at seq ${seq} \\(PAUSE\\): recorded Paused, today's machine reaches Pausing`));
    // The scrubber moved to the diverging alert: the diagram shows the state it recorded.
    await other.waitForSelector(lit('Paused'));
    await screenshot(other, 'viz-diverged');
    await other.close();
  });

  it('recovers after the agent restarts and catches up on what happened while it was away', async () => {
    const port = agent.api.port;
    await agent.stop();
    await page.waitForSelector('#connection:not([data-state="open"])');
    // While the page's agent is down, another agent on the same stream changes things: the page
    // can only learn of them by resubscribing with `since` once its agent is back.
    const interim = await startOurAgent(0);
    const client = await connect(interim.api.url, { token: interim.credentials.operatorToken });
    const other = uniqueId('viz-gap');
    await client.vm.cont(vmId);
    await client.vm.create(other);
    for (const id of [vmId, other]) await expect.poll(async () => (await client.vm.getInfo(id)).status, { timeout: 10_000 }).toBe('Up');
    await client.close();
    await interim.stop();
    agent = await startOurAgent(port);
    await host.waitForReconnect();
    await page.waitForSelector('#connection[data-state="open"]', { timeout: 20_000 });
    await page.waitForSelector(`${row(other)} .desc:text-is("Running")`, { timeout: 20_000 });
    await page.waitForSelector(lit('Up'));
    await expect.poll(() => page.textContent(`${row(vmId)} .desc`)).toBe('Running');
    await screenshot(page, 'viz-after-restart');
  }, 60_000);

  it('reads in the dark theme too', async () => {
    await page.keyboard.press('t');
    expect(await page.getAttribute('html', 'data-theme')).toBe('dark');
    await screenshot(page, 'viz-dark');
    await page.keyboard.press('t');
    expect(await page.getAttribute('html', 'data-theme')).toBe('light');
  });
});
