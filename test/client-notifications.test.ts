// What the client does with notifications today's agent never sends but a newer or a broken one
// may: values it does not know are kept (DESIGN: clients must tolerate them), and a frame that is
// not JSON or not an alert is reported, not an uncaught exception and not silently dropped; and
// a `subscriptionEnded` (the agent's feed died) is answered by resubscribing after the last seq.
// The peer here is a real WebSocket server speaking JSON-RPC, scripted to send exactly those
// frames, because the real agent validates what it sends and cannot be made to.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { connect } from '../src/index.ts';

let server: WebSocketServer;
let url: string;

type SubscribeRequest = { id: number; method: string; params: { filter: string; since?: number } };
/** What the peer does on each Host.subscribe; each test sets its own. */
let onSubscribe: (socket: WebSocket, request: SubscribeRequest) => void = () => undefined;
const reply = (socket: WebSocket, id: number, result: unknown) => socket.send(JSON.stringify({ jsonrpc: '2.0', id, result }));
const notify = (socket: WebSocket, method: string, params: unknown) => socket.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
const RUNNING = { operationDescription: 'Running', stageDescription: '', stage: [1, 1], percentage: -1, lastError: [0, ''], extraData: {} };

/** Sent after a subscribe is answered, in this order. */
const FRAMES = [
  'this is not JSON {',
  // No seq: without it the client cannot resume or deduplicate, so it cannot be an alert.
  JSON.stringify({
    jsonrpc: '2.0',
    method: 'alert',
    params: {
      alertName: 'vdsm.VM.x',
      operationInfo: { operationDescription: 'Running', stageDescription: '', stage: [1, 1], percentage: -1, lastError: [0, ''], extraData: {} },
    },
  }),
  JSON.stringify({
    jsonrpc: '2.0',
    method: 'alert',
    params: {
      alertName: 'vdsm.VM.x',
      seq: 7,
      operationInfo: {
        operationDescription: 'Aborting', // not in today's list
        stageDescription: 'aborting',
        stage: [0, 2], // a newer agent counting stages from 0
        percentage: 12.5, // and reporting fractions
        lastError: [0, ''],
        extraData: { state: 'aborting' },
        etaSeconds: 30, // a field today's schema does not have
      },
    },
  }),
];

beforeAll(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/rpc`;
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      const request = JSON.parse(data.toString()) as SubscribeRequest;
      if (request.method === 'Host.subscribe') onSubscribe(socket, request);
    });
  });
});
afterAll(async () => {
  for (const client of server?.clients ?? []) client.terminate();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

describe('notifications a client must tolerate', () => {
  it('keeps unknown values and reports what cannot be an alert', async () => {
    onSubscribe = (socket, request) => {
      reply(socket, request.id, { subscriptionId: 's1', seq: 0 });
      for (const frame of FRAMES) socket.send(frame);
    };
    const reasons: string[] = [];
    const client = await connect(url, { pingIntervalMs: 0, reconnect: false, onMalformed: (reason) => reasons.push(reason) });
    try {
      await client.subscribe('vdsm.VM.x');
      const alert = await client.waitForEvent('vdsm.VM.x', 5_000);
      expect(alert.seq).toBe(7);
      expect(alert.operationInfo).toMatchObject({ operationDescription: 'Aborting', stage: [0, 2], percentage: 12.5, etaSeconds: 30 });
      expect(client.malformedNotifications).toBe(2);
      expect(reasons[0]).toMatch(/not JSON/);
      expect(reasons[1]).toMatch(/^alert notification: seq/);
    } finally {
      await client.close();
    }
  });

  it('resubscribes after the last delivered seq when the agent ends a subscription', async () => {
    const requests: SubscribeRequest['params'][] = [];
    onSubscribe = (socket, request) => {
      requests.push(request.params);
      if (requests.length === 1) {
        reply(socket, request.id, { subscriptionId: 'first', seq: 6 });
        notify(socket, 'alert', { alertName: 'vdsm.VM.y', seq: 7, operationInfo: RUNNING });
        notify(socket, 'subscriptionEnded', { subscriptionId: 'first', reason: 'consumer deleted' });
      } else {
        reply(socket, request.id, { subscriptionId: 'second', seq: request.params.since ?? 0 });
        notify(socket, 'alert', { alertName: 'vdsm.VM.y', seq: 8, operationInfo: RUNNING });
      }
    };
    const client = await connect(url, { pingIntervalMs: 0, reconnect: false });
    try {
      await client.subscribe('vdsm.VM.y');
      expect((await client.waitForEvent('vdsm.VM.y', 5_000)).seq).toBe(7);
      expect((await client.waitForEvent('vdsm.VM.y', 5_000)).seq).toBe(8);
      expect(requests).toEqual([
        { filter: 'vdsm.VM.y', filterType: 'glob' },
        { filter: 'vdsm.VM.y', filterType: 'glob', since: 7 },
      ]);
    } finally {
      await client.close();
    }
  });
});
