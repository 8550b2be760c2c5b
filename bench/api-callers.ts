// The API load benchmark's callers, in a worker thread of their own (as they would be in processes
// of their own): each opens a WebSocket and calls VM.create on a fresh id, one call at a time,
// until the time is up; the answers' latencies go back to the benchmark.
import { parentPort, workerData } from 'node:worker_threads';
import { openPeer } from './peer.ts';

export type ApiCallers = { url: string; token: string; callers: number; seconds: number; prefix: string };
/** Per answered call, how long it took; `errors`: calls answered with an error. */
export type ApiCallersReport = { latencies: number[]; errors: number; seconds: number };

/** A call unanswered this long fails the benchmark (the thread's error) rather than hanging it. */
const CALL_TIMEOUT_MS = 30_000;

async function answerWithin<T>(ms: number, answer: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`a VM.create was not answered within ${ms} ms`)), ms)));
  try {
    return await Promise.race([answer, late]);
  } finally {
    clearTimeout(timer);
  }
}

if (parentPort) {
  const port = parentPort;
  const { url, token, callers, seconds, prefix } = workerData as ApiCallers;
  const peers = await Promise.all(Array.from({ length: callers }, () => openPeer(url, token)));
  const latencies: number[] = [];
  let errors = 0;
  const began = performance.now();
  const until = began + seconds * 1000;
  await Promise.all(
    peers.map(async (peer, caller) => {
      for (let n = 0; performance.now() < until; n += 1) {
        const sent = performance.now();
        const result = await answerWithin(CALL_TIMEOUT_MS, peer.request('VM.create', { vmId: `${prefix}-${caller}-${n}`, memoryMiB: 512 }));
        if (result === undefined) errors += 1;
        else latencies.push(performance.now() - sent);
      }
    }),
  );
  const report: ApiCallersReport = { latencies, errors, seconds: (performance.now() - began) / 1000 };
  for (const peer of peers) peer.socket.close();
  port.postMessage(report);
}
