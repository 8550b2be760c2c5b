// JSON-RPC 2.0 over WebSocket at /rpc (the seed's protocol) and GET /healthz. Each connection is
// a Session: its subscriptions' alerts go out as notifications and die with it.
//
// What a peer can do is bounded: the upgrade needs a bearer token (the role comes with it) and,
// from a browser, an allowed Origin; replies and notifications share one send budget per
// connection — past a high-water mark the connection's requests stop being read, past a hard
// limit it is closed; a peer that stops answering pings is dropped; and close() ends every
// connection, idle or not, so the agent stops within its deadline whatever clients do.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { createLogger } from '../log.ts';
import { serveViz } from '../viz/static.ts';
import { apiMethods, Dispatcher } from './dispatcher.ts';
import { createRpcEndpoint, type RpcEndpoint } from './json-rpc.ts';
import { MAX_REQUEST_BYTES } from './limits.ts';
import type { AgentServices, ApiContext } from './method.ts';
import { roleOfToken, type ApiTokens, type Role } from './roles.ts';
import { Session } from './session.ts';

const logger = createLogger('api');

/** Past this many bytes queued on a socket, notifications wait and requests stop being read. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
/** A client this far behind is not reading at all: it is disconnected rather than buffered for. */
const MAX_BUFFERED_BYTES = 32 * 1024 * 1024;
/** Requests one connection may have in progress; more wait unread in the socket. */
const MAX_IN_FLIGHT = 128;
const PING_EVERY_MS = 15_000;
/** Reading paused and not one byte taken off its queue for this long: the client does not read. */
const STALLED_MS = 5_000;

export type ApiServerOptions = AgentServices & {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Whether the agent can serve now (NATS connected, runtime recovered). */
  ready?: () => boolean;
  /** Bearer tokens; a connection presents one and gets its role. */
  tokens: ApiTokens;
  /** Browser origins allowed besides the page's own (`https://engine.example:8443`). */
  allowedOrigins?: readonly string[];
  /** PEM files: with them the API is served over TLS (wss://, https://). */
  tls?: { certFile: string; keyFile: string };
};

export type ApiServer = { url: string; port: number; close(): Promise<void> };

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const services: AgentServices = {
    runtime: options.runtime,
    sim: options.sim,
    gluster: options.gluster,
    storageAllow: options.storageAllow,
    fanout: options.fanout,
    ...(options.fleet ? { fleet: options.fleet } : {}),
  };
  const endpoint = createRpcEndpoint(new Dispatcher(apiMethods(services)));
  const onRequest = (request: IncomingMessage, response: ServerResponse) => health(request, response, options);
  const http: Server = options.tls
    ? createHttpsServer({ cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) }, onRequest)
    : createHttpServer(onRequest);
  // The transport cap sits above the JSON-RPC one so an oversized request gets a JSON-RPC error,
  // and only an absurd frame is cut off by ws itself.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 8 * MAX_REQUEST_BYTES });
  const sessions = new Set<Session>();
  http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const admitted = admit(request, options);
    if (typeof admitted !== 'string') {
      refuse(socket, admitted.status, admitted.message);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const session = serveConnection(ws, socket, endpoint, { ...services, role: admitted });
      sessions.add(session);
      ws.once('close', () => sessions.delete(session));
    });
  });
  const heartbeat = setInterval(() => {
    for (const client of wss.clients) pingOrDrop(client);
  }, PING_EVERY_MS);
  heartbeat.unref();

  await listen(http, options.port ?? 4040, options.host ?? '127.0.0.1');
  const { port } = http.address() as AddressInfo;
  return {
    url: `${options.tls ? 'wss' : 'ws'}://${options.host ?? '127.0.0.1'}:${port}/rpc`,
    port,
    async close() {
      clearInterval(heartbeat);
      // Feeds read through the agent's NATS connection: close them before it drains.
      await Promise.allSettled([...sessions].map((session) => session.close()));
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      // Idle keep-alive and half-open sockets would otherwise hold close() open forever.
      http.closeAllConnections();
      await closed;
    },
  };
}

/** The role an upgrade request is admitted with, or why it is refused. */
function admit(request: IncomingMessage, options: ApiServerOptions): Role | { status: number; message: string } {
  const url = new URL(request.url ?? '/', 'http://agent');
  if (url.pathname !== '/rpc') return { status: 404, message: 'the API is at /rpc' };
  const origin = request.headers.origin;
  if (origin !== undefined && !originAllowed(origin, request.headers.host, options.allowedOrigins ?? [])) {
    return { status: 403, message: `origin ${origin} may not use this API (same origin or --allowed-origin only)` };
  }
  const role = roleOfToken(options.tokens, bearerToken(request) ?? url.searchParams.get('token') ?? undefined);
  if (!role) {
    return {
      status: 401,
      message: 'a bearer token is required (Authorization: Bearer <token>, or ?token= from a browser); see data/credentials/',
    };
  }
  return role;
}

/** The token of an `Authorization: Bearer <token>` header. */
function bearerToken(request: IncomingMessage): string | undefined {
  return request.headers.authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
}

/**
 * A page may only drive the agent from the agent's own origin or one it was told to trust:
 * otherwise any site a user visits could reach a loopback agent through their browser.
 */
function originAllowed(origin: string, host: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

function refuse(socket: Duplex, status: number, message: string): void {
  const reason = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' }[status] ?? 'Bad Request';
  const body = JSON.stringify({ error: message });
  const extra = status === 401 ? 'WWW-Authenticate: Bearer realm="opstream"\r\n' : '';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

const alive = new WeakMap<WebSocket, boolean>();

/** Half-open connections (a peer gone without a FIN) would keep sessions and feeds forever. */
function pingOrDrop(socket: WebSocket): void {
  if (alive.get(socket) === false) {
    socket.terminate();
    return;
  }
  alive.set(socket, false);
  socket.ping();
}

function serveConnection(socket: WebSocket, transport: Duplex, endpoint: RpcEndpoint, base: AgentServices & { role: Role }): Session {
  alive.set(socket, true);
  /** Whether a frame went out in this turn of the event loop, and whether later ones are held. */
  let sending = false;
  let corked = false;
  socket.on('pong', () => alive.set(socket, true));
  let inFlight = 0;
  let paused = false;
  /** Everything this connection sends goes through here: one budget for replies and notifications. */
  const send = (text: string | Buffer): boolean => {
    if (socket.readyState !== socket.OPEN) return false;
    if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      logger.warn('closing a connection that does not read what it asked for', { buffered: socket.bufferedAmount });
      socket.terminate();
      return false;
    }
    // The first frame of a turn of the event loop leaves at once; the rest of that turn's frames
    // leave together at its end. A burst (a batch the shared read got at once) cost a system call
    // per alert per subscriber, the fan-out's largest cost at 100 subscribers, while holding back
    // a lone frame would only add latency.
    if (!sending) {
      sending = true;
      setImmediate(() => {
        sending = false;
        if (!corked) return;
        corked = false;
        transport.uncork();
      });
    } else if (!corked) {
      corked = true;
      transport.cork();
    }
    // A Buffer is a notification serialised once for every connection: still a text frame.
    socket.send(text, { binary: false });
    return true;
  };
  /**
   * Stops reading requests while the client is behind or has too many in progress; one that takes
   * nothing off its queue for STALLED_MS is not reading at all and is closed, so it cannot hold a
   * connection (and the replies queued on it) forever.
   */
  const throttle = () => {
    const behind = socket.bufferedAmount > HIGH_WATER_BYTES || inFlight >= MAX_IN_FLIGHT;
    if (behind && !paused && socket.readyState === socket.OPEN) {
      paused = true;
      socket.pause();
      let lowest = socket.bufferedAmount;
      let progressAt = Date.now();
      const check = setInterval(() => {
        if (socket.readyState !== socket.OPEN) {
          clearInterval(check);
        } else if (socket.bufferedAmount <= HIGH_WATER_BYTES && inFlight < MAX_IN_FLIGHT) {
          clearInterval(check);
          paused = false;
          socket.resume();
        } else if (socket.bufferedAmount < lowest) {
          lowest = socket.bufferedAmount;
          progressAt = Date.now();
        } else if (socket.bufferedAmount > 0 && Date.now() - progressAt > STALLED_MS) {
          clearInterval(check);
          logger.warn('closing a connection that stopped reading what it asked for', { buffered: socket.bufferedAmount });
          socket.terminate();
        }
      }, 10);
    }
  };
  const session = new Session((method, params, shared) => {
    if (!send(shared ? sharedFrame(shared, method, params) : JSON.stringify({ jsonrpc: '2.0', method, params }))) return undefined;
    // A slow reader holds its feed back instead of growing this process's memory.
    return socket.bufferedAmount > HIGH_WATER_BYTES ? caughtUp(socket) : undefined;
  });
  const context: ApiContext = { ...base, session };
  socket.on('message', (data, isBinary) => {
    inFlight += 1;
    throttle();
    void endpoint(isBinary ? null : data.toString(), context)
      .then((reply) => {
        if (reply !== undefined) send(JSON.stringify(reply));
      })
      .catch((error: unknown) => logger.error('failed to answer a request', { error: String(error) }))
      .finally(() => {
        inFlight -= 1;
        throttle();
      });
  });
  socket.on('close', () => void session.close());
  socket.on('error', (error) => logger.warn('websocket error', { error: String(error) }));
  return session;
}

/** Resolves once the socket is back under the high-water mark (or closed). */
async function caughtUp(socket: WebSocket): Promise<void> {
  while (socket.bufferedAmount > HIGH_WATER_BYTES && socket.readyState === socket.OPEN) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The notification for `shared` (the alert a feed delivers), serialised and encoded once for
 * every connection that receives it: at 100 subscribers a frame built per connection was most of
 * the fan-out's cost. ws writes an unmasked server frame's payload as it is, so one Buffer serves all.
 */
const sharedFrames = new WeakMap<object, Buffer>();

function sharedFrame(shared: object, method: string, params: Record<string, unknown>): Buffer {
  let frame = sharedFrames.get(shared);
  if (!frame) {
    frame = Buffer.from(JSON.stringify({ jsonrpc: '2.0', method, params }));
    sharedFrames.set(shared, frame);
  }
  return frame;
}

function health(request: IncomingMessage, response: ServerResponse, options: ApiServerOptions): void {
  if (request.method === 'GET' && request.url?.split('?')[0] === '/healthz') {
    const ok = (options.ready ?? (() => true))();
    response.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
    // What an operator looks at first: whether it serves, and what the agent set aside — the
    // records themselves (subjects name entities) only for a caller with a token.
    const { count, recent } = options.runtime.quarantined;
    const detail = roleOfToken(options.tokens, bearerToken(request)) ? { count, recent } : { count };
    response.end(JSON.stringify({ status: ok ? 'ok' : 'starting', quarantined: detail }));
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
