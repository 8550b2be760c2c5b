// `opstream call <Method> key=value…`: one API call by hand, its result as JSON.
import { InvalidArgumentError } from 'commander';
import { withAgent, type AgentAccess } from './agent-access.ts';

/** `memoryMiB=512` → 512, `force=true` → true, `disks=[…]` → an array; anything else a string. */
export function parseParams(pairs: string[]): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError(`expected key=value, got ${JSON.stringify(pair)}`);
    const raw = pair.slice(at + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // not JSON: keep the text
    }
    params[pair.slice(0, at)] = value;
  }
  return params;
}

export async function call(method: string, pairs: string[], access: AgentAccess): Promise<void> {
  const params = parseParams(pairs);
  const result = await withAgent(access, (client) => client.call(method, params));
  console.log(JSON.stringify(result, null, 2));
}
