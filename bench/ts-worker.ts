// A worker thread running one of the benchmarks' TypeScript modules (the clients they measure
// against): it loads TypeScript through tsx, as this process does (`npm run bench`), because Node
// 20 does not hand a worker the loader hooks `--import tsx` registered here.
import { Worker } from 'node:worker_threads';

export function tsWorker(module: URL, workerData: unknown): Worker {
  const entry = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(module.href)}); });`;
  return new Worker(entry, { eval: true, workerData });
}
