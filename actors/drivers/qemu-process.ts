// One qemu-system-x86_64 process per VM: its command line, its files under `<vmDir>/<vmId>/`
// (QMP socket, pid file, log), launching it so it outlives the agent, and telling whether the
// process a pid file names still runs.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const QEMU_SYSTEM_HINT = 'qemu-system-x86_64 not found: install it (Debian: apt-get install qemu-system-x86) or run with --vm-driver sim';

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export type QemuFiles = { dir: string; socket: string; pidFile: string; log: string };

export type QemuLaunch = {
  vmId: string;
  files: QemuFiles;
  memoryMiB: number;
  cpus: number;
  /** qcow2 files, attached as virtio disks that stop the guest on an I/O error. */
  disks: string[];
  /** Start with the CPUs stopped (`-S`), so the agent sees RESUME when it lets them run. */
  startPaused: boolean;
  /** `tcp:127.0.0.1:<port>`: wait for a live migration instead of booting. */
  incoming?: string;
  accel: 'kvm' | 'tcg';
  binary: string;
  extraArgs: string[];
};

export function qemuSystemAvailable(binary = 'qemu-system-x86_64'): boolean {
  return spawnSync(binary, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** KVM where /dev/kvm can be opened, TCG (emulation) otherwise; env OPSTREAM_QEMU_ACCEL forces one. */
export function defaultAccel(): 'kvm' | 'tcg' {
  const forced = process.env['OPSTREAM_QEMU_ACCEL'];
  if (forced === 'kvm' || forced === 'tcg') return forced;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return 'kvm';
  } catch {
    return 'tcg';
  }
}

/**
 * Files of one VM. Ids are subject tokens (no '.', no whitespace) but may hold '/', so such an id
 * gets a base64url directory name instead of its own; one too long for a unix socket path (108
 * bytes) gets a hash of itself. QEMU's `-name guest=<vmId>` names the VM either way.
 */
export function qemuFiles(vmDir: string, vmId: string): QemuFiles {
  let name = /^[A-Za-z0-9_-]+$/.test(vmId) ? vmId : `b64-${Buffer.from(vmId).toString('base64url')}`;
  if (Buffer.byteLength(join(vmDir, name, 'qmp.sock')) > MAX_SOCKET_PATH) {
    name = `h-${createHash('sha256').update(vmId).digest('hex').slice(0, 24)}`;
  }
  const dir = join(vmDir, name);
  return { dir, socket: join(dir, 'qmp.sock'), pidFile: join(dir, 'qemu.pid'), log: join(dir, 'qemu.log') };
}

export function qemuArgs(launch: QemuLaunch): string[] {
  const args = [
    '-name', `guest=${launch.vmId.replaceAll(',', ',,')}`,
    '-machine', 'pc',
    '-accel', launch.accel,
    '-m', String(launch.memoryMiB),
    '-smp', String(launch.cpus),
    '-nodefaults',
    '-display', 'none',
    '-qmp', `unix:${launch.files.socket},server=on,wait=off`,
    '-pidfile', launch.files.pidFile,
  ];
  launch.disks.forEach((path, index) => {
    args.push(
      '-blockdev', JSON.stringify({ 'node-name': `disk${index}`, driver: 'qcow2', file: { driver: 'file', filename: path } }),
      '-device', `virtio-blk-pci,drive=disk${index},id=virtio-disk${index},werror=stop,rerror=stop`,
    );
  });
  if (launch.startPaused) args.push('-S');
  if (launch.incoming) args.push('-incoming', launch.incoming);
  return [...args, ...launch.extraArgs];
}

/**
 * Starts QEMU in its own session with its output in its log file, so neither a Ctrl-C nor a
 * kill -9 of the agent reaches it. Resolves with the child once it is spawned; the QMP socket
 * comes a moment later.
 */
export function launchQemu(launch: QemuLaunch): ReturnType<typeof spawn> {
  if (Buffer.byteLength(launch.files.socket) > MAX_SOCKET_PATH) {
    throw new Error(`QMP socket path ${launch.files.socket} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter VM directory`);
  }
  mkdirSync(launch.files.dir, { recursive: true });
  const log = openSync(launch.files.log, 'a');
  try {
    const child = spawn(launch.binary, qemuArgs(launch), { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}

/** The pid in a VM's pid file, if its process still runs (a zombie does not). */
export function runningPid(files: QemuFiles): number | undefined {
  if (!existsSync(files.pidFile)) return undefined;
  const pid = Number(readFileSync(files.pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && processRuns(pid) ? pid : undefined;
}

export function processRuns(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name, is the state; Z is a zombie.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** The last lines QEMU wrote to its log, for an error message. */
export function logTail(files: QemuFiles, lines = 3): string {
  try {
    return readFileSync(files.log, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  }
}
