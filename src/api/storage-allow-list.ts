// The storage servers this agent may open connections to. StorageConnection.connect takes any
// host and port from its caller, so without a list it would be a port scanner for anyone with
// operator rights; entries are `host` (any port) or `host:port`, given at start
// (`--storage-allow`, env OPSTREAM_STORAGE_ALLOW). The default is empty: nothing is reachable.
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';

export type StorageAllowList = { entries: readonly string[]; check(server: string, port: number): void };

export function storageAllowList(entries: readonly string[]): StorageAllowList {
  const normalized = entries.map((entry) => entry.trim().toLowerCase()).filter(Boolean);
  return {
    entries: normalized,
    check(server, port) {
      const host = server.toLowerCase();
      if (normalized.includes(host) || normalized.includes(`${host}:${port}`)) return;
      const hint = normalized.length ? `it allows ${normalized.join(', ')}` : 'it is empty';
      throw new OpstreamError(
        ErrorCodes.Forbidden,
        `storage server ${server}:${port} is not in this agent's allow-list (${hint}); start the agent with --storage-allow ${server}:${port}`,
      );
    },
  };
}
