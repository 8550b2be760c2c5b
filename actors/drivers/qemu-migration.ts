// Live migration between two agents' QEMUs. The destination agent answers a bus request on
// `opstream.internal.<dstHost>.qemu.incoming` by starting a QEMU that waits for the migration and
// replies with its URI; the source drives QMP `migrate` there, with progress read from
// `query-migrate` (RAM transferred / total), and `migrate_cancel` when the work is cancelled.
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../../src/log.ts';
import type { WorkSignal } from './driver.ts';
import type { QemuVm } from './qemu-vm.ts';

export const incomingSubject = (hostId: string) => `opstream.internal.${hostId}.qemu.incoming`;

export type IncomingRequest = { vmId: string; definition: Record<string, unknown>; sourceHost: string };
type IncomingReply = { uri: string } | { error: string };

/** Answers incoming-migration requests for this host; `prepare` starts the QEMU and returns its URI. */
export function serveIncoming(
  nc: NatsConnection,
  hostId: string,
  prepare: (request: IncomingRequest) => Promise<string>,
  logger: Logger,
): { stop(): Promise<void> } {
  const subscription: Subscription = nc.subscribe(incomingSubject(hostId), {
    callback: (error, message) => {
      if (error) return;
      let request: IncomingRequest;
      try {
        request = message.json<IncomingRequest>();
        if (typeof request?.vmId !== 'string' || typeof request.definition !== 'object' || request.definition === null) throw new Error('needs vmId and definition');
      } catch (failure) {
        message.respond(JSON.stringify({ error: `bad incoming-migration request: ${(failure as Error).message}` } satisfies IncomingReply));
        return;
      }
      prepare(request)
        .then((uri) => message.respond(JSON.stringify({ uri } satisfies IncomingReply)))
        .catch((failure: unknown) => {
          logger.warn('could not prepare an incoming migration', { vmId: request.vmId, error: String(failure) });
          message.respond(JSON.stringify({ error: failure instanceof Error ? failure.message : String(failure) } satisfies IncomingReply));
        });
    },
  });
  return { stop: () => subscription.drain() };
}

/** Asks `dstHost`'s agent for an incoming QEMU; resolves with the URI to migrate to. */
export async function requestIncoming(nc: NatsConnection, dstHost: string, request: IncomingRequest, timeoutMs = 30_000): Promise<string> {
  let reply: IncomingReply;
  try {
    reply = (await nc.request(incomingSubject(dstHost), JSON.stringify(request), { timeout: timeoutMs })).json<IncomingReply>();
  } catch (error) {
    throw new Error(`host ${dstHost} did not answer the migration request (is an agent with --host-id ${dstHost} and --vm-driver qemu running?): ${(error as Error).message}`, { cause: error });
  }
  if ('error' in reply) throw new Error(`host ${dstHost} cannot receive VM ${request.vmId}: ${reply.error}`);
  return reply.uri;
}

type MigrationInfo = {
  status?: string;
  ram?: { transferred: number; remaining: number; total: number };
  'error-desc'?: string;
  'socket-address'?: Array<{ host: string; port: string }>;
};

/** The address a QEMU started with `-incoming defer` listens on once `migrate-incoming` ran. */
export async function listenForMigration(vm: QemuVm, address: string): Promise<string> {
  await vm.qmp.execute('migrate-incoming', { uri: `tcp:${address}:0` });
  const info = await vm.qmp.execute<MigrationInfo>('query-migrate');
  const port = info['socket-address']?.[0]?.port;
  if (!port) throw new Error('QEMU did not say which port it listens on for the migration');
  return `tcp:${address}:${port}`;
}

export type CopyOptions = {
  uri: string;
  /** Bytes per second; QEMU's own default when absent. */
  maxBandwidth?: number;
  pollMs: number;
  signal: WorkSignal;
  onProgress: (percentage: number) => void;
};

/**
 * Runs QMP `migrate` and follows `query-migrate` until it completes (resolves) or fails or is
 * cancelled (rejects). Cancelling the signal sends `migrate_cancel`: the guest runs on here.
 */
export async function migrate(vm: QemuVm, options: CopyOptions): Promise<void> {
  if (options.maxBandwidth !== undefined) {
    await vm.qmp.execute('migrate-set-parameters', { 'max-bandwidth': options.maxBandwidth });
  }
  const onAbort = () => void vm.qmp.execute('migrate_cancel').catch(() => undefined);
  options.signal.addEventListener('abort', onAbort, { once: true });
  // The source stops for the switch-over at the end: that STOP is no fault.
  const unexpect = vm.expectStop();
  let completed = false;
  try {
    await vm.qmp.execute('migrate', { uri: options.uri });
    let reported = -1;
    for (;;) {
      const info = await vm.qmp.execute<MigrationInfo>('query-migrate');
      if (info.status === 'completed') {
        completed = true;
        return;
      }
      if (info.status === 'failed' || info.status === 'cancelled') {
        throw new Error(`migration ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
      }
      const ram = info.ram;
      if (ram && ram.total > 0) {
        // Done = total − remaining: `transferred` counts bytes on the wire, and a zero page goes
        // as a flag, so it alone would stall at the share of non-zero memory. Pages dirtied
        // again raise `remaining`; only a higher figure is reported, and 100 is WORK_DONE's.
        const percentage = Math.min(99, Math.floor((100 * (ram.total - ram.remaining)) / ram.total));
        if (percentage > reported) {
          reported = percentage;
          options.onProgress(percentage);
        }
      }
      if (options.signal.aborted) {
        throw new Error('migration cancelled');
      }
      await sleep(options.pollMs);
    }
  } finally {
    if (!completed) unexpect();
    options.signal.removeEventListener('abort', onAbort);
  }
}
