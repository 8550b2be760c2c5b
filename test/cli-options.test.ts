// Options the CLI refuses before it starts anything, each with a message naming what was wrong.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

/** The CLI's exit code and stderr for these arguments. */
async function refusal(...args: string[]): Promise<{ code: number; stderr: string }> {
  return run(process.execPath, ['bin/opstream.js', ...args]).then(
    ({ stderr }) => ({ code: 0, stderr }),
    (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
  );
}

describe.concurrent('opstream start --replicas', () => {
  it.each([
    ['0', /must be 1, 3 or 5/],
    ['6', /must be 1, 3 or 5/],
    ['three', /must be 1, 3 or 5/],
    ['2', /must be odd: 2 replicas survive no more lost servers than 1/],
    ['4', /must be odd: 4 replicas survive no more lost servers than 3/],
  ])('refuses %s', async (value, message) => {
    const { code, stderr } = await refusal('start', '--replicas', value, '--nats-url', 'nats://127.0.0.1:1');
    expect(code).not.toBe(0);
    expect(stderr).toMatch(message);
  });
});
