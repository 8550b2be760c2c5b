// Serves the visualizer page from the agent's own HTTP port: the HTML, the stylesheet, and the
// page's TypeScript bundled by esbuild in memory the first time it is asked for (or at start,
// via prepareViz) — so there is no build step to run by hand and nothing stale on disk.
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../log.ts';

const logger = createLogger('viz');
const CLIENT_DIR = fileURLToPath(new URL('./client/', import.meta.url));

type Asset = { type: string; body: Buffer };

const ASSETS: Record<string, () => Promise<Asset>> = {
  '/': () => file('index.html', 'text/html; charset=utf-8'),
  '/viz/app.css': () => file('style.css', 'text/css; charset=utf-8'),
  '/viz/app.js': () => bundle(),
};

// The page talks to /rpc on the same origin only; the token in its URL must not leak through a
// Referer header to anything it links to.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

let bundled: Promise<Asset> | undefined;

/** Bundles the page now, so the first visitor does not wait for esbuild. */
export function prepareViz(): Promise<void> {
  return bundle().then(
    () => undefined,
    (error: unknown) => logger.warn('could not bundle the visualizer page', { error: String(error) }),
  );
}

/** Answers GET/HEAD requests for the page and its assets; false for any other request. */
export function serveViz(request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  const path = (request.url ?? '/').split('?')[0] ?? '/';
  const load = ASSETS[path === '/index.html' ? '/' : path];
  if (!load) return false;
  load().then(
    (asset) => {
      response.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, ...SECURITY_HEADERS });
      response.end(request.method === 'HEAD' ? undefined : asset.body);
    },
    (error: unknown) => {
      logger.error('visualizer asset failed', { path, error: String(error) });
      response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`the visualizer could not be served: ${(error as Error).message}\n`);
    },
  );
  return true;
}

async function file(name: string, type: string): Promise<Asset> {
  return { type, body: await readFile(`${CLIENT_DIR}${name}`) };
}

function bundle(): Promise<Asset> {
  bundled ??= (async () => {
    const started = performance.now();
    // esbuild is loaded only when the page is wanted: agents that never serve it never pay for it.
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [`${CLIENT_DIR}main.ts`],
      bundle: true,
      format: 'esm',
      target: 'es2022',
      minify: true,
      write: false,
      logLevel: 'silent',
      legalComments: 'none',
    });
    const output = result.outputFiles[0];
    if (!output) throw new Error('esbuild produced no output');
    logger.info('bundled the visualizer page', { bytes: output.contents.length, ms: Math.round(performance.now() - started) });
    return { type: 'text/javascript; charset=utf-8', body: Buffer.from(output.contents) };
  })();
  // A failed build is retried on the next request instead of being cached.
  bundled.catch(() => (bundled = undefined));
  return bundled;
}
