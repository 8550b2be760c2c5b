// How the benchmarks print: a title, the server and machine that ran them, and one line per figure.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { natsServerBinary } from '../src/nats/server-process.ts';

export type Figure = { name: string; value: number; unit: string; detail?: string };

/** The `p`th percentile of `sorted` (ascending), NaN when it is empty. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export function rate(name: string, count: number, seconds: number): Figure {
  return { name, value: count / seconds, unit: '/s', detail: `${count} in ${seconds.toFixed(2)} s` };
}

let server: string | undefined;

/** Which nats-server the benchmarks start (`nats-server: v2.10.27`), and the machine they shared. */
export function environmentLine(): string {
  server ??= execFileSync(natsServerBinary(), ['--version'], { encoding: 'utf8' }).trim();
  const load = loadavg().map((value) => value.toFixed(2)).join(' ');
  return `ran against ${server}, node ${process.version}, ${cpus().length} cores, load average ${load} at the end`;
}

export function report(title: string, figures: Figure[]): void {
  console.log(`\n${title}`);
  console.log(`  (${environmentLine()})`);
  for (const { name, value, unit, detail } of figures) {
    const shown = ['×', 's', 'ms', 'msgs'].includes(unit) ? value.toFixed(2) : Math.round(value).toLocaleString('en-US');
    console.log(`  ${name.padEnd(58)} ${shown.padStart(10)} ${unit}${detail ? `   (${detail})` : ''}`);
  }
}
