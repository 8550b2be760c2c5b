import { describe, expect, it } from 'vitest';
import { compileFilter } from '../src/filters/alert-filter.ts';
import { isSecretKey, redact, REDACTED } from '../src/domain/redaction.ts';
import { assertEntityId, parseAlertSubject } from '../src/domain/subjects.ts';
import { ErrorCodes } from '../src/domain/errors.ts';

describe('entity ids', () => {
  it.each(['best_vm', 'vm-01', 'ÄÖ-unicode', 'x'.repeat(128)])('accepts %s', (id) => {
    expect(() => assertEntityId(id, 'vmId')).not.toThrow();
  });
  it.each([
    ['', /must not be empty/],
    ['a.b', /must not contain/],
    ['*', /must not contain/],
    ['>', /must not contain/],
    ['a b', /must not contain/],
    ['tab\there', /must not contain/],
    ['nul\u0000', /must not contain/],
    ['x'.repeat(129), /at most 128/],
  ])('rejects %j', (id, message) => {
    expect(() => assertEntityId(id, 'vmId')).toThrow(message);
  });
  it('parses alert subjects back into kind and id', () => {
    expect(parseAlertSubject('vdsm.Storage.Image.img1')).toEqual({ kind: 'Storage.Image', id: 'img1' });
    expect(parseAlertSubject('vdsm.VM.a.b')).toBeUndefined();
    expect(parseAlertSubject('other.VM.a')).toBeUndefined();
  });
});

describe('redaction', () => {
  it.each(['password', 'adminPassword', 'api_key', 'sshKey', 'X-Auth-Token', 'clientSecret', 'passphrase'])('treats %s as a secret', (key) => {
    expect(isSecretKey(key)).toBe(true);
  });
  it.each(['keyboard', 'memoryMiB', 'monkey', 'passengers', 'author'])('leaves %s alone', (key) => {
    expect(isSecretKey(key)).toBe(false);
  });
  it('redacts deeply and leaves the original untouched', () => {
    const kwargs = { vmId: 'a', password: 'p', disks: [{ path: '/x', encryptionKey: 'k' }], spice: { token: 't' } };
    expect(redact(kwargs)).toEqual({ vmId: 'a', password: REDACTED, disks: [{ path: '/x', encryptionKey: REDACTED }], spice: { token: REDACTED } });
    expect(kwargs.password).toBe('p');
  });
});

describe('filters', () => {
  it('maps a glob onto a NATS wildcard and matches exactly', () => {
    const filter = compileFilter('vdsm.VM.web*', 'glob');
    expect(filter.subjects).toEqual(['vdsm.VM.*']);
    expect(filter.matches('vdsm.VM.web1')).toBe(true);
    expect(filter.matches('vdsm.VM.db1')).toBe(false);
  });
  it('covers a regexp of literal ids by exactly those subjects', () => {
    const filter = compileFilter('vdsm.VM.(a|b)', 'regexp');
    expect(filter.subjects).toEqual(['vdsm.VM.a', 'vdsm.VM.b']);
    expect(filter.matches('vdsm.VM.a')).toBe(true);
    expect(filter.matches('vdsm.VM.c')).toBe(false);
  });
  it('falls back to the kind wildcard when the id part is not literal', () => {
    expect(compileFilter('vdsm\\.VM\\.web-[0-9]+', 'regexp').subjects).toEqual(['vdsm.VM.*']);
    expect(compileFilter('vdsm\\.Storage\\..*', 'regexp').subjects).toEqual(['vdsm.Storage.Connection.*', 'vdsm.Storage.Image.*']);
  });
  it('never narrows away a subject the regexp matches', () => {
    // `.` matches any character, so `vdsm.VM.a.b` also matches the id `aXb`.
    const filter = compileFilter('vdsm.VM.a.b', 'regexp');
    expect(filter.subjects).toEqual(['vdsm.VM.*']);
    expect(filter.matches('vdsm.VM.aXb')).toBe(true);
  });
  it.each([
    ['vdsm.VM.(a', 'regexp', ErrorCodes.InvalidFilter, /does not compile/],
    ['vdsm.*', 'glob', ErrorCodes.InvalidFilter, /can match no alert name/],
    ['vdsm.>.VM', 'glob', ErrorCodes.InvalidFilter, /malformed/],
    ['vdsm.VM.*', 'sql', ErrorCodes.InvalidFilter, /filterType/],
    ['x'.repeat(300), 'glob', ErrorCodes.LimitExceeded, /limit is 256/],
  ])('rejects %s (%s)', (filter, type, code, message) => {
    expect(thrownBy(() => compileFilter(filter, type))).toMatchObject({ code, message: expect.stringMatching(message) });
  });
});

function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('published schema', () => {
  it('publishes the operationDescription enum, and lets clients keep unknown values in alerts', async () => {
    const { publishedSchemas } = await import('../src/cli/schema.ts');
    const { OPERATION_DESCRIPTIONS } = await import('../src/domain/operation-info.ts');
    const schemas = publishedSchemas() as Record<string, { properties: Record<string, { enum?: string[]; properties?: Record<string, { enum?: string[] }> }> }>;
    expect(schemas['OperationInfo']?.properties['operationDescription']?.enum).toEqual([...OPERATION_DESCRIPTIONS]);
    const received = schemas['AlertNotification']?.properties['operationInfo']?.properties?.['operationDescription'];
    expect(received).toMatchObject({ type: 'string' });
    expect(received?.enum).toBeUndefined();
  });
});

describe('filter bounds', () => {
  it.each(['(a+)+', 'vdsm.VM.(\\w*)*', 'vdsm.VM.(a|aa)+', 'vdsm.VM.(x|y){2,}'])('refuses the exponential-time shape %s', (filter) => {
    expect(thrownBy(() => compileFilter(filter, 'regexp'))).toMatchObject({ code: ErrorCodes.LimitExceeded, message: expect.stringContaining('exponential') });
  });
  it('refuses backreferences', () => {
    expect(thrownBy(() => compileFilter('vdsm.VM.(a)\\1', 'regexp'))).toMatchObject({ code: ErrorCodes.LimitExceeded });
  });
  it('keeps ordinary regexps', () => {
    expect(compileFilter('vdsm\\.(VM|Storage\\.Image)\\..*', 'regexp').subjects).toEqual(['vdsm.Storage.Image.*', 'vdsm.VM.*']);
    expect(compileFilter('vdsm.VM.web-[0-9]+', 'regexp').subjects).toEqual(['vdsm.VM.*']);
  });
  it('reads a long id alternation through the kind wildcard instead of one subject per id', () => {
    const ids = [...'abcdefgh'].flatMap((letter) => [...'0123456789'].map((digit) => `${letter}${digit}`));
    expect(compileFilter(`vdsm.VM.(${ids.join('|')})`, 'regexp').subjects).toEqual(['vdsm.VM.*']);
    expect(compileFilter(`vdsm.VM.(${ids.slice(0, 10).join('|')})`, 'regexp').subjects).toHaveLength(10);
  });
});
