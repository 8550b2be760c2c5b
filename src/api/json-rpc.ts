// JSON-RPC 2.0 framing shared by every transport (WebSocket, NATS request/reply): json-rpc-2.0
// does the protocol; this adds size limits and parse/request errors that say what was wrong.
import {
  createJSONRPCErrorResponse,
  JSONRPCServer,
  type JSONRPCErrorResponse,
  type JSONRPCID,
  type JSONRPCRequest,
  type JSONRPCResponse,
} from 'json-rpc-2.0';
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import type { Dispatcher } from './dispatcher.ts';
import { MAX_BATCH_REQUESTS, MAX_PARAMS_DEPTH, MAX_REQUEST_BYTES, nestingDepth } from './limits.ts';
import type { ApiContext } from './method.ts';

export type Reply = JSONRPCResponse | JSONRPCResponse[] | undefined;

/** Answers one frame of text (a request, a notification or a batch) for a connection's context. */
export type RpcEndpoint = (text: string | null, context: ApiContext) => Promise<Reply>;

export function createRpcEndpoint(dispatcher: Dispatcher): RpcEndpoint {
  const rpc = new JSONRPCServer<ApiContext>({ errorListener: () => undefined });
  for (const name of dispatcher.methodNames) {
    rpc.addMethod(name, (params, context) => dispatcher.invoke(name, params, context));
  }
  rpc.handleMethodNotFound = async (request) => errorResponse(request.id ?? null, dispatcher.methodNotFound(request.method));
  rpc.mapErrorToJSONRPCErrorResponse = (id, error: unknown) =>
    errorResponse(id, error instanceof OpstreamError ? error : new OpstreamError(ErrorCodes.InternalError, String(error)));

  const answerOne = async (request: JSONRPCRequest, context: ApiContext): Promise<JSONRPCResponse | undefined> => {
    // A notification (no id) is run but never answered, not even with an error: the spec's rule,
    // and a client that sends nothing but notifications must not be able to fill our send buffer.
    const notification = request.id === undefined;
    const depth = nestingDepth(request.params, MAX_PARAMS_DEPTH);
    if (depth > MAX_PARAMS_DEPTH) {
      if (notification) return undefined;
      return failure(request.id ?? null, ErrorCodes.InvalidParams, `${request.method}: params nest deeper than ${MAX_PARAMS_DEPTH} levels`);
    }
    const reply = (await rpc.receive(request, context)) ?? undefined;
    return notification ? undefined : reply;
  };

  return async (text, context) => {
    if (text === null) return failure(null, ErrorCodes.InvalidRequest, 'binary frames are not JSON-RPC; send text');
    return replyToFrame(text, (request) => answerOne(request, context));
  };
}

/**
 * The reply a frame would get if each of its requests failed with `code` and `message`: nothing
 * for a notification, and framed as an answer is, so a refusal is never a bigger reply than an
 * answer. For a caller turned away before anything runs.
 */
export function refuseFrame(text: string, code: number, message: string): Promise<Reply> {
  return replyToFrame(text, (request) => (request.id === undefined ? undefined : failure(request.id, code, message)));
}

/**
 * The reply to a frame of text (a request, a notification or a batch), each well-formed request
 * answered by `answer`: a frame too large, not JSON, an empty batch or one over the batch limit
 * gets one error, and an item that is not a request its own.
 */
async function replyToFrame(text: string, answer: (request: JSONRPCRequest) => Promise<JSONRPCResponse | undefined> | JSONRPCResponse | undefined): Promise<Reply> {
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
  const one = async (item: unknown): Promise<JSONRPCResponse | undefined> => {
    const problem = requestProblem(item);
    return problem ? failure(idOf(item), ErrorCodes.InvalidRequest, `Invalid Request: ${problem}`) : answer(item as JSONRPCRequest);
  };
  if (!Array.isArray(parsed)) return one(parsed);
  if (parsed.length === 0) return failure(null, ErrorCodes.InvalidRequest, 'Invalid Request: empty batch');
  if (parsed.length > MAX_BATCH_REQUESTS) {
    return failure(null, ErrorCodes.LimitExceeded, `a batch holds ${parsed.length} requests; the limit is ${MAX_BATCH_REQUESTS}`);
  }
  const replies = await Promise.all(parsed.map(one));
  const present = replies.filter((reply): reply is JSONRPCResponse => reply !== undefined);
  return present.length ? present : undefined;
}

function errorResponse(id: JSONRPCID, { code, message, data }: OpstreamError): JSONRPCErrorResponse {
  return createJSONRPCErrorResponse(id, code, message, data);
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
