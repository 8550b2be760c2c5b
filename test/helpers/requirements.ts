// Tests of real parts that a fresh machine may lack (qemu-img, qemu-system, chromium). In CI
// (`CI=true`, where .ci/run installs them) a missing tool fails the file, so CI always runs these
// tests; on a developer's machine the file is skipped with the reason and how to get the tool.
import { spawnSync } from 'node:child_process';

export type Requirement = { available: boolean; reason: string };

/** Whether `command --version` (or `args`) runs; `hint` says how to install it. */
export function requireTool(command: string, hint: string, args: string[] = ['--version']): Requirement {
  const available = spawnSync(command, args, { stdio: 'ignore' }).status === 0;
  const reason = `${command} not found: ${hint}`;
  if (!available && process.env['CI'] === 'true') throw new Error(`CI must run these tests: ${reason}`);
  if (!available) process.stderr.write(`skipping: ${reason}\n`);
  return { available, reason };
}
