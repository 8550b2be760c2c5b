#!/usr/bin/env node
// @ts-check
// Set-up shared by `npm start`, `npm test` and `npm run bench`. It runs before node_modules
// exists, so it is plain Node with no dependencies.
//
// 1. Installs the npm dependencies when node_modules is missing or older than the lockfile.
// 2. Finds nats-server >= 2.10, fetching one into .tools/ when none is on the PATH
//    (src/nats/server-binary.mjs, which the agent and the CLI share).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNatsServer } from '../src/nats/server-binary.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** @param {string} message */
function say(message) {
  process.stderr.write(`[setup] ${message}\n`);
}

/** Installs npm dependencies when node_modules is missing or older than the lockfile. */
export function ensureDependencies() {
  const marker = join(ROOT, 'node_modules', '.package-lock.json');
  const lock = join(ROOT, 'package-lock.json');
  const installed = existsSync(marker) && (!existsSync(lock) || statSync(marker).mtimeMs >= statSync(lock).mtimeMs);
  if (installed) return;
  say('installing npm dependencies (first run)');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const run = spawnSync(npm, [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (run.status !== 0) {
    say('npm could not install the dependencies (see above).');
    process.exit(1);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureDependencies();
  const needServer = process.argv.includes('--nats-server') || !process.env['NATS_URL'];
  if (needServer) ensureNatsServer();
}
