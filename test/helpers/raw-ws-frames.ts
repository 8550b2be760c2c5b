// A WebSocket client written by hand on a bare TCP socket: it can send frames without ever
// reading what the agent sends back (a client that never reads), which the `ws` library, which
// manages its own backpressure, would not let a test do reliably.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export type FrameWriter = {
  socket: Socket;
  /** Writes one masked text frame. */
  sendText(text: string): void;
  /** Resumes reading and counts what arrives until the agent closes or `timeoutMs` passes. */
  drain(timeoutMs: number): Promise<{ bytes: number; closed: boolean }>;
  destroy(): void;
};

/** Upgrades to a WebSocket on `url` with a bearer token, then stops reading. */
export async function openFrameWriter(url: string, token: string): Promise<FrameWriter> {
  const { hostname, port, pathname } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(
    `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
  );
  const head = await new Promise<string>((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        socket.off('data', onData);
        socket.pause();
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`);
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => (closed = true));
  return {
    socket,
    sendText(text) {
      if (socket.destroyed) return;
      socket.write(encodeFrame(Buffer.from(text)));
    },
    drain(timeoutMs) {
      return new Promise((resolve) => {
        let bytes = 0;
        const done = () => {
          clearTimeout(timer);
          resolve({ bytes, closed });
        };
        const timer = setTimeout(done, timeoutMs);
        if (closed) return done();
        socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
        socket.once('close', done);
        socket.resume();
      });
    },
    destroy: () => socket.destroy(),
  };
}

function encodeFrame(payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x81, 0x80 | length]) : length < 65_536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (length >= 126 && length < 65_536) {
    header[0] = 0x81;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else if (length >= 65_536) {
    header[0] = 0x81;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i += 1) masked[i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return Buffer.concat([header, mask, masked]);
}
