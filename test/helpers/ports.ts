// Ports a test fixes before it starts what listens on them (cluster routes must name each other;
// `opstream fleet` lays its ports out from one base). They are taken below the ephemeral range:
// the servers and agents of test files running beside it bind port 0, and the system may hand
// them any free port of that range, including one chosen here and not yet bound, or one a killed
// node frees until it is revived (that happened: EADDRINUSE).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 10_000;

/** A base port whose next `count` ports are all free now. */
export async function freePortRange(count: number): Promise<number> {
  const top = ephemeralPortsStart() - count;
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = LOWEST + Math.floor(Math.random() * (top - LOWEST));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found between ${LOWEST} and ${top + count}`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Where the range the system picks port-0 binds from starts (Linux's default where it cannot be read). */
function ephemeralPortsStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (low > LOWEST + 100) return low;
  } catch {
    // not Linux: its default below
  }
  return 32_768;
}
