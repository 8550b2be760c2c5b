// A corpus of hostile JSON-RPC frames, generated from the API's own method list: every method ×
// bad params (wrong types, missing, extra, ids that cannot be a subject token), deep nesting,
// oversized requests, bad filters, unknown methods, malformed JSON and envelopes, batches over
// the limit. Each case says the exact error code each transport must answer and what the message
// must name. None of them may write anything.
import type { z } from 'zod';
import { PLAIN_METHODS } from '../../src/api/dispatcher.ts';
import { jobMethods } from '../../src/api/methods/job.ts';
import { simMethods } from '../../src/api/methods/sim.ts';
import type { MethodSpec } from '../../src/api/method.ts';

export type Transport = 'ws' | 'nats';
/** An error code, or 'ok' for a request that must be answered with a result (quickly). */
export type Expectation = number | 'ok';

export type BadInput = {
  name: string;
  /** The exact text sent. */
  text: string;
  /** What each transport must answer (both when only one is given). */
  expect: Expectation | Record<Transport, Expectation>;
  /** A fragment the error message must contain (names what was wrong). */
  mentions?: string | RegExp;
  /** Which transports to send it over (default both). */
  only?: Transport;
  /** The reply is a batch: every item must carry `expect`. */
  batch?: number;
};

/** Fields that become subject tokens: every one must refuse every bad id. */
export const ID_FIELDS = ['vmId', 'imageId', 'dstImageId', 'baseImageId', 'connectionId', 'volumeName'];

export const BAD_IDS: Array<[string, unknown]> = [
  ['empty', ''],
  ['129 characters', 'a'.repeat(129)],
  ['a dot', '.'],
  ['dotted', 'a.b'],
  ['star', '*'],
  ['gt', '>'],
  ['wildcard tail', 'a.>'],
  ['space', 'a b'],
  ['tab', 'a\tb'],
  ['newline', 'a\nb'],
  ['NUL', 'a\u0000b'],
  ['bell', '\u0007'],
  ['DEL', 'a\u007f'],
  ['lone high surrogate', '\uD800'],
  ['lone low surrogate', 'a\uDC00'],
  ['reversed surrogates', '\uDC00\uD800'],
  ['a number', 12345],
  ['null', null],
  ['an object', { id: 'x' }],
  ['an array', ['x']],
  ['a boolean', true],
  ['CRLF injection', 'x\r\nPUB vdsm.VM.y 2\r\nhi'],
];

const WRONG_VALUES: unknown[] = [12345, 'a-string', true, null, { nested: 1 }, [1], -1, 1.5];

/** A value of a plausible right shape for a field, for cases about another field. */
const GOOD_VALUE: Record<string, unknown> = {
  vmId: 'corpus-vm',
  imageId: 'corpus-image',
  dstImageId: 'corpus-image-2',
  connectionId: 'corpus-connection',
  volumeName: 'corpus-volume',
  dstHost: 'other-host',
  filter: 'vdsm.VM.*',
  subscriptionId: 'no-such-subscription',
};

let nextId = 1;
const request = (method: string, params?: unknown, id: unknown = `c${nextId++}`): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

const nest = (depth: number, leaf = '"x"'): string => '['.repeat(depth) + leaf + ']'.repeat(depth);

function shapeOf(method: MethodSpec): Record<string, z.ZodType> {
  return (method.params as unknown as { shape: Record<string, z.ZodType> }).shape;
}

/** Every method every agent of the test stack serves (the simulator is on). */
// Their params as each method declares them; the job layer in front adds only jobId and flowId.
export const CORPUS_METHODS: readonly MethodSpec[] = [...PLAIN_METHODS, ...(jobMethods as MethodSpec[]), ...(simMethods as MethodSpec[])];

export function buildCorpus(): BadInput[] {
  const corpus: BadInput[] = [];
  for (const method of CORPUS_METHODS) {
    const shape = shapeOf(method);
    const name = method.name;
    const base = Object.fromEntries(Object.keys(shape).filter((key) => key in GOOD_VALUE).map((key) => [key, GOOD_VALUE[key]]));
    // params that are not an object
    for (const [label, params] of [['a string', '"x"'], ['a number', '42'], ['null', 'null'], ['true', 'true']] as const) {
      corpus.push({ name: `${name} params ${label}`, text: `{"jsonrpc":"2.0","id":"c${nextId++}","method":${JSON.stringify(name)},"params":${params}}`, expect: -32600, mentions: 'params' });
    }
    corpus.push({ name: `${name} params an array`, text: request(name, [base]), expect: -32602, mentions: 'named params' });
    corpus.push({ name: `${name} params an empty array`, text: request(name, []), expect: -32602, mentions: 'named params' });
    // missing params
    if (!method.params.safeParse({}).success) {
      const missing = Object.keys(shape).find((key) => !shape[key]?.safeParse(undefined).success) ?? '';
      corpus.push({ name: `${name} no params`, text: request(name), expect: -32602, mentions: missing });
      corpus.push({ name: `${name} empty params`, text: request(name, {}), expect: -32602, mentions: missing });
    }
    // an unknown extra param, on methods whose params are closed
    const extra = method.params.safeParse({ ...base, bogus_param: 1 });
    if (!extra.success && extra.error.issues.some((issue) => issue.code === 'unrecognized_keys')) {
      corpus.push({ name: `${name} extra param`, text: request(name, { ...base, bogus_param: 1 }), expect: -32602, mentions: 'bogus_param' });
    }
    // each field with a value of the wrong type
    for (const [key, schema] of Object.entries(shape)) {
      const wrong = WRONG_VALUES.find((value) => !schema.safeParse(value).success);
      if (wrong === undefined) continue;
      corpus.push({ name: `${name} ${key} wrong type ${JSON.stringify(wrong)}`, text: request(name, { ...base, [key]: wrong }), expect: -32602, mentions: `${key}:` });
    }
    // ids that cannot be one subject token
    for (const key of Object.keys(shape).filter((field) => ID_FIELDS.includes(field))) {
      for (const [label, id] of BAD_IDS) {
        corpus.push({ name: `${name} ${key} ${label}`, text: request(name, { ...base, [key]: id }), expect: -32602, mentions: `${key}:` });
      }
    }
    // params nested past the bound
    for (const depth of [17, 100, 2_000]) {
      corpus.push({ name: `${name} params nested ${depth}`, text: `{"jsonrpc":"2.0","id":"c${nextId++}","method":${JSON.stringify(name)},"params":{"deep":${nest(depth)}}}`, expect: -32602, mentions: 'deeper than 16' });
    }
  }

  // nesting elsewhere: very deep, in kwargs, as a batch item, beside the envelope
  corpus.push({ name: 'params nested 100000', text: `{"jsonrpc":"2.0","id":"deep1","method":"VM.create","params":{"vmId":"deep-vm","k":${nest(100_000)}}}`, expect: -32602, mentions: 'deeper than 16' });
  corpus.push({ name: 'kwargs nested 2000', text: `{"jsonrpc":"2.0","id":"deep2","method":"VM.create","params":{"vmId":"deep-vm","disks":[{"a":${nest(2_000)}}]}}`, expect: -32602, mentions: 'deeper than 16' });
  corpus.push({ name: 'batch of one array nested 100000', text: `[${nest(100_000)}]`, expect: -32600, batch: 1 });
  corpus.push({ name: 'a bare array nested 100000', text: nest(100_000), expect: -32600, batch: 1 });
  corpus.push({ name: 'an object nested 100000', text: '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000), expect: -32600 });
  corpus.push({ name: 'id nested', text: `{"jsonrpc":"2.0","id":${nest(50)},"method":"VM.getInfo","params":{"vmId":"x"}}`, expect: -32600, mentions: '"id"' });

  // oversized
  corpus.push({ name: 'request over 1 MiB', text: request('VM.getInfo', { vmId: 'a'.repeat(1024 * 1024) }), expect: 107, mentions: 'limit', only: 'ws' });
  corpus.push({ name: 'VM.create kwargs over 16 KiB', text: request('VM.create', { vmId: 'big-vm', blob: 'x'.repeat(20_000) }), expect: -32602, mentions: '16384' });
  corpus.push({ name: 'dstHost 256 characters', text: request('VM.migrate', { vmId: 'corpus-vm', dstHost: 'h'.repeat(256) }), expect: -32602, mentions: 'dstHost' });
  corpus.push({ name: 'filter 257 characters', text: request('Host.getRunningTasks', { filter: 'a'.repeat(257), filterType: 'regexp' }), expect: 106, mentions: 'limit is 256' });
  corpus.push({ name: 'alert filter 257 characters', text: request('Host.getRunningOperations', { filter: `vdsm.VM.${'a'.repeat(249)}` }), expect: 106, mentions: 'limit is 256' });

  // filters: invalid regexps and globs, filters that can match nothing, ReDoS shapes
  const invalidRegexps = ['(', ')', '[', '[z-a]', 'a{2,1}', '(a)\\1', '(?=a)', '(?!a)', '(?<=a)b', '(?<n>a)\\k<n>', '*', 'a**', '\\', '(?P<x'];
  for (const regexp of invalidRegexps) {
    corpus.push({ name: `getRunningTasks regexp ${regexp}`, text: request('Host.getRunningTasks', { filter: regexp, filterType: 'regexp' }), expect: 103, mentions: 'regexp' });
    corpus.push({ name: `getRunningOperations regexp ${regexp}`, text: request('Host.getRunningOperations', { filter: regexp, filterType: 'regexp' }), expect: 103, mentions: 'regexp' });
    corpus.push({ name: `subscribe regexp ${regexp}`, text: request('Host.subscribe', { filter: regexp, filterType: 'regexp' }), expect: { ws: 103, nats: -32601 } });
  }
  const badGlobs = ['vdsm..VM', 'vdsm.>.x', '.vdsm', 'vdsm.VM.', 'other.>', 'vdsmx.VM.*', 'vdsm.Nope.*', '>.x'];
  for (const glob of badGlobs) {
    corpus.push({ name: `getRunningOperations glob ${glob}`, text: request('Host.getRunningOperations', { filter: glob }), expect: 103, mentions: glob });
    corpus.push({ name: `subscribe glob ${glob}`, text: request('Host.subscribe', { filter: glob }), expect: { ws: 103, nats: -32601 } });
  }
  for (const regexp of ['^other\\..*$', 'nothing', 'vdsm\\.Nope\\..*']) {
    corpus.push({ name: `getRunningOperations never-matching regexp ${regexp}`, text: request('Host.getRunningOperations', { filter: regexp, filterType: 'regexp' }), expect: 103, mentions: 'can match no alert' });
  }
  corpus.push({ name: 'subscribe empty filter', text: request('Host.subscribe', { filter: '' }), expect: { ws: 103, nats: -32601 } });
  corpus.push({ name: 'getRunningTasks filterType pcre', text: request('Host.getRunningTasks', { filter: 'x', filterType: 'pcre' }), expect: -32602, mentions: 'filterType' });
  corpus.push({ name: 'getRunningTasks on bogus', text: request('Host.getRunningTasks', { filter: 'x', on: 'kwargs' }), expect: -32602, mentions: 'on' });
  corpus.push({ name: 'subscribe since negative', text: request('Host.subscribe', { filter: 'vdsm.VM.*', since: -1 }), expect: -32602, mentions: 'since' });
  corpus.push({ name: 'subscribe since fractional', text: request('Host.subscribe', { filter: 'vdsm.VM.*', since: 1.5 }), expect: -32602, mentions: 'since' });
  corpus.push({ name: 'subscribe since past the stream', text: request('Host.subscribe', { filter: 'vdsm.VM.*', since: 1e12 }), expect: { ws: -32602, nats: -32601 } });
  corpus.push({ name: 'unsubscribe unknown id', text: request('Host.unsubscribe', { subscriptionId: 'nope' }), expect: { ws: 104, nats: -32601 } });
  const redos = ['(a+)+$', '(a|a)*b', '([0-9a-f-]{8}([0-9a-f-]+)+z)', '(x+x+)+y', '(.*a){20}'];
  for (const regexp of redos) {
    corpus.push({ name: `getRunningTasks ReDoS ${regexp}`, text: request('Host.getRunningTasks', { filter: regexp, filterType: 'regexp' }), expect: 'ok' });
  }
  corpus.push({ name: 'getRunningOperations ReDoS nested group', text: request('Host.getRunningOperations', { filter: 'vdsm\\.VM\\.((a+))+b', filterType: 'regexp' }), expect: 'ok' });

  // unknown methods
  for (const method of ['VM.nope', 'VM.getinfo', 'nope', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'rpc.discover', 'VM.create ', ' VM.create', 'VM', 'VM.', '.create', '\uD800', 'Sim.nope', 'Host.close']) {
    corpus.push({ name: `unknown method ${JSON.stringify(method)}`, text: request(method, {}), expect: -32601, mentions: 'unknown method' });
  }

  // malformed JSON
  for (const text of ['{', '', ' ', 'nul', '{"jsonrpc":"2.0",}', '\u0000', '[', 'undefined', "{'jsonrpc':'2.0'}", '{"jsonrpc":"2.0","id":1,"method":"VM.getInfo","params":{"vmId":"x"}', '{"a":1}}', 'NaN', '{"jsonrpc":"2.0","id":01,"method":"x"}']) {
    corpus.push({ name: `malformed JSON ${JSON.stringify(text.slice(0, 30))}`, text, expect: -32700, mentions: 'Parse error' });
  }

  // A byte-order mark: the bus decodes text with TextDecoder, which drops it; the WebSocket keeps it.
  corpus.push({ name: 'malformed JSON with a BOM', text: '\uFEFF{}', expect: { ws: -32700, nats: -32600 } });

  // envelopes that are JSON but not JSON-RPC requests
  const envelopes: Array<[string, string, string]> = [
    ['a number', '1', 'JSON object'],
    ['null', 'null', 'JSON object'],
    ['a string', '"VM.getInfo"', 'JSON object'],
    ['an empty object', '{}', 'jsonrpc'],
    ['jsonrpc 1.0', '{"jsonrpc":"1.0","id":1,"method":"VM.getInfo","params":{"vmId":"x"}}', 'jsonrpc'],
    ['jsonrpc number', '{"jsonrpc":2,"id":1,"method":"VM.getInfo","params":{"vmId":"x"}}', 'jsonrpc'],
    ['no jsonrpc', '{"id":1,"method":"VM.getInfo","params":{"vmId":"x"}}', 'jsonrpc'],
    ['method a number', '{"jsonrpc":"2.0","id":1,"method":5}', 'method'],
    ['method empty', '{"jsonrpc":"2.0","id":1,"method":""}', 'method'],
    ['method null', '{"jsonrpc":"2.0","id":1,"method":null}', 'method'],
    ['no method', '{"jsonrpc":"2.0","id":1,"params":{}}', 'method'],
    ['id an object', '{"jsonrpc":"2.0","id":{"a":1},"method":"VM.getInfo","params":{"vmId":"x"}}', '"id"'],
    ['id an array', '{"jsonrpc":"2.0","id":[1],"method":"VM.getInfo","params":{"vmId":"x"}}', '"id"'],
    ['id true', '{"jsonrpc":"2.0","id":true,"method":"VM.getInfo","params":{"vmId":"x"}}', '"id"'],
    ['a result, not a request', '{"jsonrpc":"2.0","id":1,"result":{}}', 'method'],
  ];
  for (const [label, text, mentions] of envelopes) corpus.push({ name: `envelope ${label}`, text, expect: -32600, mentions });

  // batches
  corpus.push({ name: 'empty batch', text: '[]', expect: -32600, mentions: 'empty batch' });
  corpus.push({ name: 'batch of 65', text: `[${Array.from({ length: 65 }, () => request('VM.getInfo', { vmId: 'x' })).join(',')}]`, expect: 106, mentions: 'limit is 64' });
  corpus.push({ name: 'batch of 5000 creates', text: `[${Array.from({ length: 5_000 }, (_, i) => request('VM.create', { vmId: `flood-${i}` })).join(',')}]`, expect: 106, mentions: 'limit is 64' });
  corpus.push({ name: 'batch of 64 bad ids', text: `[${Array.from({ length: 64 }, () => request('VM.create', { vmId: 'a.b' })).join(',')}]`, expect: -32602, batch: 64 });
  corpus.push({ name: 'batch of numbers', text: '[1,2,3]', expect: -32600, batch: 3 });
  corpus.push({ name: 'batch of malformed envelopes', text: '[{}, {"jsonrpc":"2.0"}, null]', expect: -32600, batch: 3 });
  corpus.push({ name: 'batch in a batch', text: `[[${request('VM.getInfo', { vmId: 'x' })}]]`, expect: -32600, batch: 1 });
  return corpus;
}
