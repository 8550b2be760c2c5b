// A bare WebSocket for sending exactly the bytes a test wants, malformed ones included.
import WebSocket from 'ws';

export type RawReply = { id?: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } };

export type RawSocket = {
  /** Sends text and resolves with the next reply that is not a notification. */
  send(text: string): Promise<RawReply | RawReply[]>;
  close(): void;
};

export async function openRawSocket(url: string, token?: string): Promise<RawSocket> {
  const socket = new WebSocket(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const replies: Array<RawReply | RawReply[]> = [];
  let wake: (() => void) | undefined;
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as RawReply | RawReply[] & { method?: string };
    if (!Array.isArray(message) && 'method' in message) return;
    replies.push(message);
    wake?.();
  });
  return {
    async send(text) {
      socket.send(text);
      while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return replies.shift() as RawReply | RawReply[];
    },
    close: () => socket.close(),
  };
}
