// Storage connections for real: a TCP connection to the storage server's port (NFS 2049 by
// default), opened by `connect`, held while Connected — its loss is reported — and closed by
// `disconnect`. Refused, unreachable and unknown hosts come back as lastError.
import { connect, type Socket } from 'node:net';
import type { ErrorTuple } from '../../machines/entity.ts';
import { whenAborted, type Driver, type WorkReporter, type WorkRequest, type WorkSignal } from './driver.ts';
import { LastErrorCodes } from '../../src/domain/last-errors.ts';

type ConnectionParams = { server?: string; port?: number };

const CONNECT_TIMEOUT_MS = 5_000;
const KEEPALIVE_MS = 10_000;

export class TcpConnectionDriver implements Driver {
  readonly #held = new Map<string, Socket>();

  start(request: WorkRequest, report: WorkReporter, signal: WorkSignal): void {
    const { server = '', port = 2049 } = ((request.context as { params?: ConnectionParams }).params ?? {}) as ConnectionParams;
    const target = `${server}:${port}`;
    switch (request.work) {
      case 'connect':
        this.#open(request.id, server, port, report, signal);
        return;
      case 'holdConnection': {
        // After an agent restart nothing is held yet: open it again, as `restart` declares.
        const socket = this.#held.get(request.id);
        if (!socket) this.#open(request.id, server, port, report, signal, true);
        else this.#hold(socket, target, report, signal);
        return;
      }
      case 'abortConnect':
      case 'disconnect': {
        const socket = this.#held.get(request.id);
        this.#held.delete(request.id);
        socket?.destroy();
        const timer = setImmediate(() => void report({ type: 'WORK_DONE' }));
        whenAborted(signal, () => clearImmediate(timer));
        return;
      }
      default: {
        const timer = setImmediate(() => void report({ type: 'WORK_FAILED', error: [LastErrorCodes.Failed, `no connection work ${request.work}`] }));
        whenAborted(signal, () => clearImmediate(timer));
      }
    }
  }

  /**
   * Reports the connection lost when the server closes its side (a half-close is the end of an
   * NFS session too) or the socket dies — also when that happened before the hold began.
   */
  #hold(socket: Socket, target: string, report: WorkReporter, signal: WorkSignal): void {
    let reported = false;
    const lost = () => {
      if (reported) return;
      reported = true;
      void report({ type: 'WORK_FAILED', error: [LastErrorCodes.ConnectionLost, `connection to ${target} lost`] });
    };
    if (socket.destroyed || socket.readableEnded) {
      const timer = setImmediate(lost);
      whenAborted(signal, () => clearImmediate(timer));
      return;
    }
    socket.once('end', lost);
    socket.once('close', lost);
    whenAborted(signal, () => {
      socket.off('end', lost);
      socket.off('close', lost);
    });
  }

  #open(id: string, server: string, port: number, report: WorkReporter, signal: WorkSignal, thenHold = false): void {
    let settled = false;
    const socket = connect({ host: server, port });
    socket.setTimeout(CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      settled = true;
      socket.setTimeout(0);
      this.#held.get(id)?.destroy();
      this.#held.set(id, socket);
      // Dead peers that never send a FIN are found by TCP keepalive instead of never.
      socket.setKeepAlive(true, KEEPALIVE_MS);
      if (!thenHold) void report({ type: 'WORK_DONE' });
      else this.#hold(socket, `${server}:${port}`, report, signal);
    });
    socket.once('timeout', () => socket.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      void report({ type: 'WORK_FAILED', error: connectError(error, `${server}:${port}`) });
    });
    whenAborted(signal, () => {
      if (!settled) socket.destroy();
    });
  }
}

function connectError(error: NodeJS.ErrnoException, target: string): ErrorTuple {
  switch (error.code) {
    case 'ECONNREFUSED':
      return [LastErrorCodes.ConnectionRefused, `connection refused by ${target}`];
    case 'ETIMEDOUT':
      return [LastErrorCodes.ConnectTimeout, `no answer from ${target} within ${CONNECT_TIMEOUT_MS / 1000} s`];
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return [LastErrorCodes.UnknownHost, `unknown host ${target.split(':')[0]}`];
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return [LastErrorCodes.HostUnreachable, `${target} is unreachable`];
    default:
      return [LastErrorCodes.ConnectFailed, `cannot connect to ${target}: ${error.message}`];
  }
}
