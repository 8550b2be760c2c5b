// A QEMU Machine Protocol client: newline-delimited JSON over QEMU's unix socket. Connecting reads
// the greeting and negotiates capabilities; commands carry ids so answers match their questions;
// events (STOP, RESUME, BLOCK_IO_ERROR, SHUTDOWN, ...) go to listeners as they arrive.
// Written here rather than taken from npm: the only QMP packages there are single-release and
// unmaintained, and the protocol is small.
import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type QmpEvent = {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
};

/** A command QEMU refused (`{"error": {"class", "desc"}}`), or a connection that went away. */
export class QmpError extends Error {
  override name = 'QmpError';
  constructor(
    /** QEMU's error class (`GenericError`, `CommandNotFound`, ...); `Closed` when the socket closed. */
    readonly errorClass: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void; command: string };
type Answer = { id?: number; return?: unknown; error?: { class: string; desc: string } } & Partial<QmpEvent>;

export class QmpClient {
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  readonly #eventListeners = new Set<(event: QmpEvent) => void>();
  readonly #closeListeners = new Set<() => void>();
  #nextId = 1;
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.once('close', () => this.#onClose());
    socket.on('error', () => undefined); // 'close' follows and says it all
  }

  /**
   * Connects, reads the greeting and leaves negotiation mode. QEMU serves one QMP client per
   * socket at a time; a second connection waits until the first closes, hence the timeout.
   */
  static async connect(path: string, timeoutMs = 5_000): Promise<QmpClient> {
    const socket = createConnection(path);
    const lines = new LineReader(socket);
    const greeting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new QmpError('Timeout', `no QMP greeting on ${path} within ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new QmpError('Connect', `cannot connect to QMP socket ${path}: ${error.message}`, { cause: error }));
      });
      lines.onLine = (line) => {
        clearTimeout(timer);
        if (line.includes('"QMP"')) resolve();
        else reject(new QmpError('Protocol', `unexpected QMP greeting on ${path}: ${line.slice(0, 200)}`));
      };
    });
    try {
      await greeting;
    } catch (error) {
      socket.destroy();
      throw error;
    }
    const client = new QmpClient(socket);
    lines.onLine = (line) => client.#onLine(line);
    await client.execute('qmp_capabilities');
    return client;
  }

  /** Retries connecting until QEMU has created its socket (a QEMU just launched), or gives up. */
  static async connectWhenReady(path: string, options: { timeoutMs: number; alive: () => boolean }): Promise<QmpClient> {
    const deadline = Date.now() + options.timeoutMs;
    for (;;) {
      try {
        return await QmpClient.connect(path, Math.max(500, deadline - Date.now()));
      } catch (error) {
        if (!options.alive() || Date.now() > deadline) throw error;
        await sleep(25);
      }
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs a command; resolves with its `return`, rejects with a QmpError. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.#closed) return Promise.reject(new QmpError('Closed', `QMP connection closed; cannot run ${command}`));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject, command });
      this.#socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  onClose(listener: () => void): () => void {
    if (this.#closed) queueMicrotask(listener);
    else this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /** The next event named `name` that `accept` takes; rejects on timeout or when the socket closes. */
  waitForEvent(name: string, timeoutMs: number, accept: (event: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        offEvent();
        offClose();
      };
      const timer = setTimeout(() => {
        done();
        reject(new QmpError('Timeout', `no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const offEvent = this.onEvent((event) => {
        if (event.event !== name || !accept(event)) return;
        done();
        resolve(event);
      });
      const offClose = this.onClose(() => {
        done();
        reject(new QmpError('Closed', `QMP connection closed while waiting for ${name}`));
      });
    });
  }

  /** Closes our end; QEMU keeps running and accepts the next client. */
  close(): void {
    this.#socket.destroy();
  }

  #onLine(line: string): void {
    let message: Answer;
    try {
      message = JSON.parse(line) as Answer;
    } catch {
      return; // QMP speaks JSON only; a torn line cannot be answered anyway
    }
    if (message.event) {
      for (const listener of [...this.#eventListeners]) listener(message as QmpEvent);
      return;
    }
    const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
    if (!pending || message.id === undefined) return;
    this.#pending.delete(message.id);
    if (message.error) pending.reject(new QmpError(message.error.class, `${pending.command}: ${message.error.desc}`));
    else pending.resolve(message.return);
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(new QmpError('Closed', `QMP connection closed before ${pending.command} answered`));
    }
    for (const listener of [...this.#closeListeners]) listener();
    this.#closeListeners.clear();
  }
}

/** Splits a socket's bytes into lines; QMP ends every message with a newline. */
class LineReader {
  onLine: (line: string) => void = () => undefined;
  #buffer = '';

  constructor(socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      for (let end = this.#buffer.indexOf('\n'); end >= 0; end = this.#buffer.indexOf('\n')) {
        const line = this.#buffer.slice(0, end).trim();
        this.#buffer = this.#buffer.slice(end + 1);
        if (line) this.onLine(line);
      }
    });
  }
}
