// The cancel policy is part of each machine's spec: every state that runs an operation declares
// one, revert states take CANCEL into a state that undoes the work, and the README's table is the
// one generated from the meta (so it cannot drift).
import { readFileSync } from 'node:fs';
import type { AnyStateMachine } from 'xstate';
import { describe, expect, it } from 'vitest';
import type { StateMeta } from '../machines/entity.ts';
import { MACHINES } from '../machines/index.ts';
import { cancelPolicyTable, TABLE_BEGIN, TABLE_END } from '../src/jobs/cancel-table.ts';
import { publishedSchemas } from '../src/cli/schema.ts';

type Node = { path: string[]; meta?: unknown; states: Record<string, Node> };
function statesOf(machine: AnyStateMachine): Node[] {
  const all: Node[] = [];
  const visit = (node: Node) => {
    all.push(node);
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(machine.root as unknown as Node);
  return all;
}
/** States with work but no operation (a held connection): nothing to cancel. */
// Settled states whose work only watches (a held connection, a running or paused guest): no task
// runs there, so there is nothing to cancel.
const NO_OPERATION = new Set(['Storage.Connection:Connected', 'VM:Up', 'VM:Paused']);

describe('cancel policy in state meta', () => {
  for (const { kind, machine } of Object.values(MACHINES)) {
    it(`${kind}: every state running an operation declares a policy; revert states take CANCEL`, () => {
      for (const node of statesOf(machine)) {
        const meta = node.meta as StateMeta | undefined;
        const name = `${kind}:${node.path.join('.')}`;
        if (!meta?.work || NO_OPERATION.has(name)) continue;
        expect(meta.cancel, name).toBeDefined();
        expect(meta.cancel!.reason.length, name).toBeGreaterThan(10);
        const value = node.path.reduceRight<string | Record<string, unknown>>((inner, key) => (inner === '' ? key : { [key]: inner }), '');
        const snapshot = machine.resolveState({ value: value as never, context: {} as never });
        expect(snapshot.can({ type: 'CANCEL' }), name).toBe(meta.cancel!.policy === 'revert');
      }
    });
  }

  it('the README table is the one generated from the meta', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const begin = readme.indexOf(TABLE_BEGIN);
    const end = readme.indexOf(TABLE_END);
    expect(begin, 'README.md lacks the cancel-policy markers').toBeGreaterThan(0);
    expect(readme.slice(begin, end + TABLE_END.length), 'stale: run `npx tsx scripts/cancel-table.ts --write`').toBe(cancelPolicyTable());
  });

  it('opstream schema publishes JobInfo and the job fields of the alert notification', () => {
    const schemas = publishedSchemas() as Record<string, { properties?: Record<string, unknown> }>;
    expect(Object.keys(schemas['JobInfo']?.properties ?? {})).toEqual(expect.arrayContaining(['jobId', 'status', 'steps', 'correlationId']));
    expect(Object.keys(schemas['AlertNotification']?.properties ?? {})).toEqual(expect.arrayContaining(['jobId', 'task', 'flowId']));
  });
});
