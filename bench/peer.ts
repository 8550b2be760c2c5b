// A raw WebSocket JSON-RPC client for the benchmarks: the fan-out's subscribers (in a worker
// thread) and the wire-message counts use it.
import WebSocket from 'ws';

/** A JSON-RPC message as a bench client reads it. */
export type Incoming = { id?: number; result?: unknown; method?: string; params?: { seq?: number } };

/**
 * A raw WebSocket client that parses each message once, as any real client does: with one parse
 * per listener, the 100 in-process clients of the fan-out benchmark cost the shared event loop
 * more than the agent's sending did, and showed up as fan-out latency.
 */
export type Peer = { socket: WebSocket; request(method: string, params: Record<string, unknown>): Promise<unknown> };

export async function openPeer(url: string, token: string, onMessage?: (message: Incoming) => void): Promise<Peer> {
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const waiting = new Map<number, (result: unknown) => void>();
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as Incoming;
    onMessage?.(message);
    if (message.id === undefined) return;
    waiting.get(message.id)?.(message.result);
    waiting.delete(message.id);
  });
  return {
    socket,
    request(method, params) {
      nextId += 1;
      const id = nextId;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      });
    },
  };
}

let nextId = 0;
