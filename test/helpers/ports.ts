// Ports a test fixes before it starts what listens on them (cluster routes must name each other;
// `opstream fleet` lays its ports out from one base). They are taken below the ephemeral range:
// the servers and agents of test files running beside it bind port 0, and the system may hand
// them any free port of that range, including one chosen here and not yet bound, or one a killed
// node frees until it is revived (that happened: EADDRINUSE).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 10_000;
const HIGHEST = 65_535;

/** A base port whose next `count` ports are all free now, outside the ephemeral range. */
export async function freePortRange(count: number): Promise<number> {
  const [low, high] = ephemeralRange();
  // Below the range where there is room, else above it; inside it, never.
  const [from, to] = low - LOWEST > 1_000 ? [LOWEST, low - count] : [high + 1, HIGHEST + 1 - count];
  if (to - from < 1_000) throw new Error(`no room for test ports outside the ephemeral range ${low}-${high}`);
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = from + Math.floor(Math.random() * (to - from));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found between ${from} and ${to + count}`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The range the system picks port-0 binds from (Linux's default where it cannot be read). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high && low <= high) return [low, high];
  } catch {
    // not Linux: its default below
  }
  return [32_768, 60_999];
}
