// Every `lastError` code an entity can carry, in one place: machines and drivers take their codes
// from here (a test scans them for stray numbers) and the README's table is generated from it, so
// a client switching on a code reads the same list the agent writes from.

/**
 * The `lastError` codes (`OperationInfo.lastError[0]`). Small numbers are errno-like tool
 * failures, 1xx the hypervisor, 5xx injected faults, 6xx storage connections, 7xx Gluster, 9xx the
 * runtime itself. A job's step refused by the API carries that API error's code (100–124, see
 * `ErrorCodes`) instead.
 */
export const LastErrorCodes = {
  None: 0,
  Failed: 1,
  NoSuchFile: 2,
  PermissionDenied: 13,
  NoSpace: 28,
  DiskWriteError: 123,
  ToolMissing: 127,
  QemuExited: 130,
  QemuPausedOutside: 131,
  MigrationFailed: 132,
  StorageOperationAborted: 140,
  InjectedFailure: 500,
  ConnectFailed: 600,
  ConnectionRefused: 601,
  ConnectTimeout: 602,
  UnknownHost: 603,
  HostUnreachable: 604,
  ConnectionLost: 605,
  RebalanceFailed: 701,
  ResumeFailed: 900,
  Cancelled: 910,
  WorkStalled: 911,
} as const;
export type LastErrorName = keyof typeof LastErrorCodes;
export type LastErrorCode = (typeof LastErrorCodes)[LastErrorName];

/** What each code means, for the README table and for anyone reading a stream. */
export const LAST_ERROR_DOCS: Record<LastErrorName, string> = {
  None: 'no error',
  Failed: 'the work failed; the message says how (a tool, a QMP command, an unknown work)',
  NoSuchFile: 'qemu-img: a file it needs does not exist',
  PermissionDenied: 'qemu-img: permission denied on a file',
  NoSpace: 'qemu-img: no space left on the device',
  DiskWriteError: 'the guest hit a disk I/O error and was paused ("Error writing to disks")',
  ToolMissing: 'qemu-img is not installed on this host',
  QemuExited: 'the QEMU process ended without the agent asking',
  QemuPausedOutside: 'QEMU paused the guest without the agent asking',
  MigrationFailed: 'a migration failed (no destination, or QEMU reported a failure)',
  StorageOperationAborted: "a VM disk's part ended because its operation (the VM's migration, a copy) ended before it",
  InjectedFailure: 'a failure injected by the simulated driver (tests, demo)',
  ConnectFailed: 'a storage connection could not be made for another reason',
  ConnectionRefused: 'the storage server refused the connection',
  ConnectTimeout: 'the storage server did not answer in time',
  UnknownHost: 'the storage server name does not resolve',
  HostUnreachable: 'the storage server is unreachable',
  ConnectionLost: 'a held storage connection was lost',
  RebalanceFailed: 'a Gluster rebalance failed on a brick',
  ResumeFailed: 'the agent restarted during an operation whose state cannot be resumed',
  Cancelled: 'the operation was cancelled by request (its task ends `cancelled`)',
  WorkStalled: 'the driver reported nothing for longer than the work allows',
};

export const LAST_ERROR_TABLE_BEGIN = '<!-- last-errors:begin (generated from src/domain/last-errors.ts; do not edit) -->';
export const LAST_ERROR_TABLE_END = '<!-- last-errors:end -->';

/** The README's markdown table of codes, with its markers. */
export function lastErrorTable(): string {
  const rows = (Object.keys(LastErrorCodes) as LastErrorName[]).map(
    (name) => `| ${LastErrorCodes[name]} | \`${name}\` | ${LAST_ERROR_DOCS[name]} |`,
  );
  return [LAST_ERROR_TABLE_BEGIN, '| Code | Name | Meaning |', '| --- | --- | --- |', ...rows, LAST_ERROR_TABLE_END].join('\n');
}

/** The README with its table replaced by today's. */
export function withCurrentLastErrorTable(readme: string): string {
  const begin = readme.indexOf(LAST_ERROR_TABLE_BEGIN);
  const end = readme.indexOf(LAST_ERROR_TABLE_END);
  if (begin < 0 || end < begin) throw new Error('README.md has no last-errors table markers');
  return readme.slice(0, begin) + lastErrorTable() + readme.slice(end + LAST_ERROR_TABLE_END.length);
}
