// lastError codes have one registry (src/domain/last-errors.ts): machines and drivers take their
// codes from it — a numeric code written inline anywhere in machines/ or actors/ fails here — and
// the README's table is the one generated from it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAST_ERROR_TABLE_BEGIN, LAST_ERROR_TABLE_END, LastErrorCodes, lastErrorTable } from '../src/domain/last-errors.ts';

const ROOT = new URL('..', import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(dir, file));
}

// An error tuple with a literal code (`[605, \`lost\`]`, `[1, message]`), a WorkError built from a
// number, or a named code constant set to a number: each should name a registry entry instead.
const INLINE_CODE = [
  /\[\s*[1-9]\d*\s*,\s*[^\d\s\]]/,
  /new WorkError\(\s*\d/,
  /\b[A-Z_]*(?:CODE|FAILED|STALLED|ERROR)[A-Z_]*\s*(?::\s*\w+\s*)?=\s*\[?\s*[1-9]\d*/,
  /^\s*[A-Z]\w*:\s*[1-9]\d*,\s*$/,
];

describe('lastError codes', () => {
  it('machines and drivers take every code from the registry', () => {
    const offenders: string[] = [];
    for (const file of [...sources('machines'), ...sources('actors')]) {
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .forEach((line, index) => {
          if (INLINE_CODE.some((pattern) => pattern.test(line))) offenders.push(`${file}:${index + 1}: ${line.trim()}`);
        });
    }
    expect(offenders, 'use LastErrorCodes from src/domain/last-errors.ts').toEqual([]);
  });

  it('each code is one meaning', () => {
    const codes = Object.values(LastErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('the README table is the one generated from the registry', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const begin = readme.indexOf(LAST_ERROR_TABLE_BEGIN);
    const end = readme.indexOf(LAST_ERROR_TABLE_END);
    expect(begin, 'README.md lacks the last-errors markers').toBeGreaterThan(0);
    expect(readme.slice(begin, end + LAST_ERROR_TABLE_END.length), 'stale: run `npx tsx scripts/last-error-table.ts --write`').toBe(lastErrorTable());
  });
});
