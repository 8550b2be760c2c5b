// JSON-RPC 2.0 over WebSocket at /rpc (the seed's protocol) and GET /healthz. json-rpc-2.0 does
// the protocol; this file adds what a serious server owes its clients: size limits, parse and
// request errors that say what was wrong, and per-connection subscriptions cleaned up on close.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createJSONRPCErrorResponse,
  JSONRPCServer,
  type JSONRPCErrorResponse,
  type JSONRPCID,
  type JSONRPCRequest,
  type JSONRPCResponse,
} from 'json-rpc-2.0';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SimulatedDriver } from '../../actors/drivers/simulated-driver.ts';
import type { Runtime } from '../../actors/runtime.ts';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import { createLogger } from '../log.ts';
import { Dispatcher } from './dispatcher.ts';
import { MAX_REQUEST_BYTES } from './limits.ts';
import { Session } from './session.ts';

const logger = createLogger('api');

export type ApiServerOptions = {
  runtime: Runtime;
  sim?: SimulatedDriver;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Whether the agent can serve now (NATS connected, runtime started). */
  ready?: () => boolean;
};

export type ApiServer = { url: string; port: number; close(): Promise<void> };

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const dispatcher = new Dispatcher();
  const rpc = createRpcServer(dispatcher, options);
  const http = createServer((request, response) => health(request, response, options.ready ?? (() => true)));
  // The transport cap sits above the JSON-RPC one so an oversized request gets a JSON-RPC error,
  // and only an absurd frame is cut off by ws itself.
  const wss = new WebSocketServer({ server: http, path: '/rpc', maxPayload: 8 * MAX_REQUEST_BYTES });
  const sessions = new Set<Session>();
  wss.on('connection', (socket) => {
    const session = serveConnection(socket, rpc);
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

function createRpcServer(dispatcher: Dispatcher, options: ApiServerOptions): JSONRPCServer<Session> {
  const rpc = new JSONRPCServer<Session>({ errorListener: () => undefined });
  for (const name of dispatcher.methodNames) {
    rpc.addMethod(name, (params, session) =>
      dispatcher.invoke(name, params, { runtime: options.runtime, sim: options.sim, session }),
    );
  }
  rpc.handleMethodNotFound = async (request) => errorResponse(request.id ?? null, dispatcher.methodNotFound(request.method));
  rpc.mapErrorToJSONRPCErrorResponse = (id, error: unknown) =>
    errorResponse(id, error instanceof OpstreamError ? error : new OpstreamError(ErrorCodes.InternalError, String(error)));
  return rpc;
}

function errorResponse(id: JSONRPCID, { code, message, data }: OpstreamError): JSONRPCErrorResponse {
  return createJSONRPCErrorResponse(id, code, message, data);
}

function serveConnection(socket: WebSocket, rpc: JSONRPCServer<Session>): Session {
  const session = new Session((method, params) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
  });
  socket.on('message', (data, isBinary) => {
    void answer(rpc, session, isBinary ? null : data.toString())
      .then((reply) => {
        if (reply !== undefined && socket.readyState === socket.OPEN) socket.send(JSON.stringify(reply));
      })
      .catch((error: unknown) => logger.error('failed to answer a request', { error: String(error) }));
  });
  socket.on('close', () => void session.close());
  socket.on('error', (error) => logger.warn('websocket error', { error: String(error) }));
  return session;
}

type Reply = JSONRPCResponse | JSONRPCResponse[] | undefined;

async function answer(rpc: JSONRPCServer<Session>, session: Session, text: string | null): Promise<Reply> {
  if (text === null) return failure(null, ErrorCodes.InvalidRequest, 'binary frames are not JSON-RPC; send text');
  const size = Buffer.byteLength(text);
  if (size > MAX_REQUEST_BYTES) {
    return failure(null, ErrorCodes.PayloadTooLarge, `request is ${size} bytes; the limit is ${MAX_REQUEST_BYTES}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return failure(null, ErrorCodes.ParseError, `Parse error: ${(error as Error).message}`);
  }
  if (Array.isArray(parsed)) {
    if (parsed.length === 0) return failure(null, ErrorCodes.InvalidRequest, 'Invalid Request: empty batch');
    const replies = await Promise.all(parsed.map((item: unknown) => answerOne(rpc, session, item)));
    const present = replies.filter((reply): reply is JSONRPCResponse => reply !== undefined);
    return present.length ? present : undefined;
  }
  return answerOne(rpc, session, parsed);
}

async function answerOne(rpc: JSONRPCServer<Session>, session: Session, item: unknown): Promise<JSONRPCResponse | undefined> {
  const problem = requestProblem(item);
  if (problem) return failure(idOf(item), ErrorCodes.InvalidRequest, `Invalid Request: ${problem}`);
  return (await rpc.receive(item as JSONRPCRequest, session)) ?? undefined;
}

/** Why `item` is not a JSON-RPC 2.0 request, or undefined when it is one. */
function requestProblem(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'a request must be a JSON object';
  const request = item as Record<string, unknown>;
  if (request['jsonrpc'] !== '2.0') return '"jsonrpc" must be "2.0"';
  if (typeof request['method'] !== 'string' || request['method'] === '') return '"method" must be a non-empty string';
  const id = request['id'];
  if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') return '"id" must be a string, a number or null';
  const params = request['params'];
  if (params !== undefined && (typeof params !== 'object' || params === null)) return '"params" must be an object or an array';
  return undefined;
}

function idOf(item: unknown): JSONRPCID {
  const id = (item as { id?: unknown } | null)?.id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

function failure(id: JSONRPCID, code: number, message: string): JSONRPCResponse {
  return createJSONRPCErrorResponse(id, code, message);
}

function health(request: IncomingMessage, response: ServerResponse, ready: () => boolean): void {
  if (request.method === 'GET' && request.url?.split('?')[0] === '/healthz') {
    const ok = ready();
    response.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ status: ok ? 'ok' : 'starting' }));
    return;
  }
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
