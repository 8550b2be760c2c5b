// JSON-RPC 2.0 over WebSocket at /rpc (the seed's protocol) and GET /healthz. Each connection is
// a Session: its subscriptions' alerts go out as notifications and die with it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SimulatedDriver } from '../../actors/drivers/simulated-driver.ts';
import type { SimulatedGluster } from '../../actors/drivers/simulated-gluster.ts';
import type { Runtime } from '../../actors/runtime.ts';
import { createLogger } from '../log.ts';
import { serveViz } from '../viz/static.ts';
import { Dispatcher } from './dispatcher.ts';
import { createRpcEndpoint, type RpcEndpoint } from './json-rpc.ts';
import { MAX_REQUEST_BYTES } from './limits.ts';
import type { ApiContext } from './method.ts';
import { Session } from './session.ts';

const logger = createLogger('api');

/** Past this many bytes queued on a socket, a subscription waits before sending more. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;

export type ApiServerOptions = {
  runtime: Runtime;
  sim?: SimulatedDriver;
  gluster?: SimulatedGluster;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Whether the agent can serve now (NATS connected, runtime recovered). */
  ready?: () => boolean;
};

export type ApiServer = { url: string; port: number; close(): Promise<void> };

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const endpoint = createRpcEndpoint(new Dispatcher());
  const http = createServer((request, response) => health(request, response, options.ready ?? (() => true)));
  // The transport cap sits above the JSON-RPC one so an oversized request gets a JSON-RPC error,
  // and only an absurd frame is cut off by ws itself.
  const wss = new WebSocketServer({ server: http, path: '/rpc', maxPayload: 8 * MAX_REQUEST_BYTES });
  const sessions = new Set<Session>();
  wss.on('connection', (socket) => {
    const session = serveConnection(socket, endpoint, options);
    sessions.add(session);
    socket.once('close', () => sessions.delete(session));
  });

  await listen(http, options.port ?? 4040, options.host ?? '127.0.0.1');
  const { port } = http.address() as AddressInfo;
  return {
    url: `ws://${options.host ?? '127.0.0.1'}:${port}/rpc`,
    port,
    async close() {
      // Feeds read through the agent's NATS connection: close them before it drains.
      await Promise.allSettled([...sessions].map((session) => session.close()));
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

function serveConnection(socket: WebSocket, endpoint: RpcEndpoint, options: ApiServerOptions): Session {
  const session = new Session(async (method, params) => {
    if (socket.readyState !== socket.OPEN) return;
    socket.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
    // A slow reader holds its feed back instead of growing this process's memory.
    while (socket.bufferedAmount > HIGH_WATER_BYTES && socket.readyState === socket.OPEN) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
  const context: ApiContext = { runtime: options.runtime, sim: options.sim, gluster: options.gluster, session };
  socket.on('message', (data, isBinary) => {
    void endpoint(isBinary ? null : data.toString(), context)
      .then((reply) => {
        if (reply !== undefined && socket.readyState === socket.OPEN) socket.send(JSON.stringify(reply));
      })
      .catch((error: unknown) => logger.error('failed to answer a request', { error: String(error) }));
  });
  socket.on('close', () => void session.close());
  socket.on('error', (error) => logger.warn('websocket error', { error: String(error) }));
  return session;
}

function health(request: IncomingMessage, response: ServerResponse, ready: () => boolean): void {
  if (request.method === 'GET' && request.url?.split('?')[0] === '/healthz') {
    const ok = ready();
    response.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ status: ok ? 'ok' : 'starting' }));
    return;
  }
  if (serveViz(request, response)) return; // the visualizer page (src/viz), a client of /rpc
  response.writeHead(404, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ error: 'not found: the API is JSON-RPC over WebSocket at /rpc; health at /healthz' }));
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
