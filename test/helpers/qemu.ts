// QEMU processes a test started: found by the test's own VM directory on their command line, and
// ended by pid, so a failed test never leaves a guest running on the machine.
import { readdirSync, readFileSync } from 'node:fs';
import { killPid } from '../../actors/drivers/qemu-vm.ts';

/** Pids of live processes whose command line mentions `dir` (the test's own temp directory). */
export function qemusUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.startsWith('qemu-system') && cmdline.includes(dir)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids.filter((pid) => {
    try {
      return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
    } catch {
      return false;
    }
  });
}

export async function killLeftoverQemus(dir: string): Promise<void> {
  await Promise.all(qemusUnder(dir).map((pid) => killPid(pid, 0)));
}
