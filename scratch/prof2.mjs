import { readFileSync, readdirSync } from 'node:fs';
const f = readdirSync('/tmp/prof')[0];
const p = JSON.parse(readFileSync(`/tmp/prof/${f}`));
const byId = new Map(p.nodes.map(n => [n.id, n]));
const parent = new Map(); for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const target = p.nodes.filter(n => n.callFrame.url.endsWith('machines/vm.ts'));
for (const n of target.slice(0, 5)) { let chain = []; let id = n.id; for (let i = 0; i < 8 && id; i++) { const m = byId.get(id); chain.push(`${m.callFrame.functionName||'anon'}@${m.callFrame.url.split('/').pop()}:${m.callFrame.lineNumber}:${m.callFrame.columnNumber}`); id = parent.get(id); } console.log(n.hitCount, chain.join(' <- ')); }
