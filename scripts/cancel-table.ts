// Prints the cancel-policy table generated from the machines' meta; `--write` puts it in README.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { cancelPolicyTable, withCurrentTable } from '../src/jobs/cancel-table.ts';

if (process.argv.includes('--write')) {
  const path = new URL('../README.md', import.meta.url);
  writeFileSync(path, withCurrentTable(readFileSync(path, 'utf8')));
  console.log('README.md: cancel-policy table updated');
} else {
  console.log(cancelPolicyTable());
}
