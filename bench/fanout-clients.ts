// The fan-out benchmark's subscribers, in a worker thread of their own: each opens a WebSocket,
// subscribes, and notes when every alert arrived (timeOrigin + now, the clock the agent's thread
// notes appends with); on 'stop' the notes go back to the benchmark.
import { parentPort, workerData } from 'node:worker_threads';
import { openPeer, type Peer } from './peer.ts';

export type FanOutClients = { url: string; token: string; count: number; filter: string };
/** Per delivery: the alert's stream sequence and when it reached its client. */
export type FanOutReport = { seqs: number[]; at: number[] };

if (parentPort) {
  const port = parentPort;
  const { url, token, count, filter } = workerData as FanOutClients;
  const report: FanOutReport = { seqs: [], at: [] };
  const peers: Peer[] = [];
  for (let i = 0; i < count; i += 1) {
    const peer = await openPeer(url, token, (message) => {
      if (message.method !== 'alert' || message.params?.seq === undefined) return;
      report.at.push(performance.timeOrigin + performance.now());
      report.seqs.push(message.params.seq);
    });
    await peer.request('Host.subscribe', { filter });
    peers.push(peer);
  }
  port.postMessage({ kind: 'subscribed' });
  port.once('message', () => {
    for (const peer of peers) peer.socket.close();
    port.postMessage({ kind: 'received', ...report });
  });
}
