// QEMU processes a test started: found by the test's own VM directory on their command line, and
// ended by pid, so a failed test never leaves a guest running on the machine.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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

/**
 * A 512-byte boot sector that reads sector 2 of its boot disk through the BIOS (int 13h) every
 * 100 ms, forever: a guest that keeps doing disk I/O without any OS.
 */
export function readLoopBootSector(): Buffer {
  const code = [
    0x31, 0xc0, // xor ax,ax
    0x8e, 0xd8, // mov ds,ax
    0x8e, 0xc0, // mov es,ax
    0xfb, // sti
    0xb8, 0x01, 0x02, // loop: mov ax,0x0201 (read one sector)
    0xb9, 0x02, 0x00, // mov cx,0x0002 (cylinder 0, sector 2)
    0xba, 0x80, 0x00, // mov dx,0x0080 (head 0, first hard disk)
    0xbb, 0x00, 0x7e, // mov bx,0x7e00
    0xcd, 0x13, // int 13h
    0xb4, 0x86, // mov ah,0x86 (wait cx:dx microseconds)
    0xb9, 0x01, 0x00, // mov cx,0x0001
    0xba, 0xa0, 0x86, // mov dx,0x86a0 (0x186a0 = 100,000)
    0xcd, 0x15, // int 15h
    0xeb, 0xe6, // jmp loop
  ];
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

export type DiskExport = { uri: string; waitForReads(count: number): Promise<void>; stop(): Promise<void> };

/**
 * Serves a 1 MiB raw disk whose boot sector loops on reads, over NBD (qemu-nbd on a unix socket):
 * a storage server a test can take away from under a running guest.
 */
export async function startLoopingDiskExport(dir: string): Promise<DiskExport> {
  const id = `${process.pid}-${Date.now()}`;
  const file = join(dir, `disk-${id}.raw`);
  const socket = join(dir, `nbd-${id}.sock`);
  const data = Buffer.alloc(1024 * 1024);
  readLoopBootSector().copy(data);
  writeFileSync(file, data);
  const child = spawn('qemu-nbd', ['-f', 'raw', '-k', socket, '-t', '-e', '4', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let tries = 0; !existsSync(socket); tries += 1) {
    if (tries > 200 || child.exitCode !== null) throw new Error('qemu-nbd did not start');
    await sleep(25);
  }
  return {
    uri: `nbd+unix:///?socket=${socket}`,
    async waitForReads(count: number) {
      // qemu-nbd has no counter; the guest's reads show as the server's read syscalls.
      const reads = () => Number(/syscr:\s*(\d+)/.exec(readFileSync(`/proc/${child.pid}/io`, 'utf8'))?.[1] ?? 0);
      const start = reads();
      for (let tries = 0; reads() - start < count; tries += 1) {
        if (tries > 400) throw new Error('the guest does not read its disk');
        await sleep(25);
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      rmSync(socket, { force: true });
    },
  };
}
