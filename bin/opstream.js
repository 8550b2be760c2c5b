#!/usr/bin/env node
// The CLI's entry. In the repository it runs the TypeScript sources (tsx compiles on load, so
// there is no build step to forget); installed from the package, where there are no sources,
// it runs the build in dist/.
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else {
  await import(new URL('../dist/src/cli/main.js', import.meta.url).href);
}
