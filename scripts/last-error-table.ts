// Prints the lastError code table generated from the registry; `--write` puts it in README.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { lastErrorTable, withCurrentLastErrorTable } from '../src/domain/last-errors.ts';

if (process.argv.includes('--write')) {
  const path = new URL('../README.md', import.meta.url);
  writeFileSync(path, withCurrentLastErrorTable(readFileSync(path, 'utf8')));
  console.log('README.md: last-errors table updated');
} else {
  console.log(lastErrorTable());
}
