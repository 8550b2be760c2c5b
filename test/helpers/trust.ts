// Helpers for the adversarial trust suites: /healthz, a WebSocket that records every frame
// (replies and notifications), and waiting for an entity's status through the API.
import { Collected } from './collected.ts';
import { get } from 'node:http';
import WebSocket from 'ws';
import type { OpstreamClient } from '../../src/index.ts';

export type Health = { status: number; body: { status: string; quarantined: { count: number; recent?: Array<{ seq: number; subject: string; reason: string; source: string }> } } };

/** GET /healthz of the agent whose API is at `apiUrl` (ws://host:port/rpc). */
export function healthz(apiUrl: string, token?: string): Promise<Health> {
  const url = new URL(apiUrl.replace(/^ws/, 'http'));
  return new Promise((resolve, reject) => {
    const request = get(
      { host: url.hostname, port: url.port, path: '/healthz', headers: token ? { authorization: `Bearer ${token}` } : {} },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => {
          try {
            resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Health['body'] });
          } catch (error) {
            reject(error as Error);
          }
        });
      },
    );
    request.on('error', reject);
  });
}

export type Frame = { id?: unknown; method?: string; params?: Record<string, unknown>; result?: unknown; error?: { code: number; message: string } };

/** A WebSocket that keeps every frame it receives, so a test can look for notifications too. */
export type RecordingSocket = {
  socket: WebSocket;
  frames: Frame[];
  /** Sends a request and resolves with the reply carrying its id. */
  request(method: string, params?: unknown, timeoutMs?: number): Promise<Frame>;
  /** Resolves with the first frame (already received or later) that satisfies `predicate`. */
  until(predicate: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  close(): void;
};

export async function openRecordingSocket(url: string, token: string): Promise<RecordingSocket> {
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const frames = new Collected<Frame>((seen) => `saw ${seen.length} frames: ${JSON.stringify(seen.slice(-5))}`);
  socket.on('message', (data) => {
    const parsed = JSON.parse(data.toString()) as Frame | Frame[];
    for (const frame of Array.isArray(parsed) ? parsed : [parsed]) frames.push(frame);
  });
  let next = 1;
  const until = (predicate: (frame: Frame) => boolean, timeoutMs?: number) => frames.until(predicate, timeoutMs);
  return {
    socket,
    frames: frames.items,
    request(method, params, timeoutMs) {
      const id = `r${next++}`;
      socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }));
      return until((frame) => frame.id === id, timeoutMs);
    },
    until,
    close: () => socket.close(),
  };
}

/** Polls VM.getInfo until the VM reports `status`. */
export async function untilVmStatus(host: OpstreamClient, vmId: string, status: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await host.vm.getInfo(vmId);
    if (info.status === status) return;
    if (Date.now() > deadline) throw new Error(`${vmId} stayed ${info.status}, expected ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The error code and message a call rejected with (or a failure if it resolved). */
export async function callError(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    const result = await call;
    return { code: Number.NaN, message: `resolved: ${JSON.stringify(result)}` };
  } catch (error) {
    const { code, message } = error as { code?: number; message: string };
    return { code: code ?? Number.NaN, message };
  }
}
