// Debian's chromium driven by playwright-core (`npx playwright install` cannot download here),
// headless with a fresh profile per launch; tests skip it off CI when chromium is missing.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_BIN = process.env['CHROMIUM_BIN'] ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Where tests leave screenshots (git-ignored; CI can keep them). */
export const ARTIFACTS = join(process.cwd(), 'test-artifacts');

export type TestBrowser = { context: BrowserContext; page(): Promise<Page>; close(): Promise<void> };

export async function launchBrowser(viewport = { width: 1440, height: 900 }): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'opstream-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_BIN, headless: true, args: CHROMIUM_FLAGS, viewport });
  return {
    context,
    page: () => context.newPage(),
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}
