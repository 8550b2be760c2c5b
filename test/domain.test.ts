import { describe, expect, it } from 'vitest';
import { compileFilter } from '../src/filters/alert-filter.ts';
import { isSecretKey, redact, REDACTED } from '../src/domain/redaction.ts';
import { alertSubject, assertEntityId, EntityKinds, parseAlertSubject } from '../src/domain/subjects.ts';
import { refOfSnapshotKey, snapshotKey } from '../actors/snapshot-store.ts';
import { compilePattern } from '../src/filters/pattern.ts';
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
  it("parses a VM's disk as its own kind, unambiguously, and writes it back", () => {
    expect(parseAlertSubject('vdsm.VM.web.Disk.d1')).toEqual({ kind: 'VM.Disk', id: 'web.d1' });
    // A VM may be called Disk; its subject has one id token fewer than a disk's.
    expect(parseAlertSubject('vdsm.VM.Disk')).toEqual({ kind: 'VM', id: 'Disk' });
    expect(parseAlertSubject('vdsm.VM.web')).toEqual({ kind: 'VM', id: 'web' });
    for (const bad of ['vdsm.VM.web.Disk', 'vdsm.VM.web.Nic.d1', 'vdsm.VM.web.Disk.d1.x', 'vdsm.VM.*.Disk.d1', 'vdsm.VM.web.Disk.>', 'vdsm.VM..Disk.d1']) {
      expect(parseAlertSubject(bad), bad).toBeUndefined();
    }
    expect(alertSubject(EntityKinds.VMDisk, 'web.d1')).toBe('vdsm.VM.web.Disk.d1');
    expect(() => alertSubject(EntityKinds.VMDisk, 'web')).toThrow(/does not fit vdsm\.VM\.<id>\.Disk\.<id>/);
    const ref = { kind: EntityKinds.VMDisk, id: 'web.d1' };
    expect(refOfSnapshotKey(snapshotKey(ref))).toEqual(ref);
  });
});

describe('redaction', () => {
  it.each([
    'password', 'adminPassword', 'api_key', 'sshKey', 'X-Auth-Token', 'clientSecret', 'passphrase',
    // Spellings a word list misses: matched by the stems they contain.
    'passwords', 'sshkey', 'privkey', 'dbpassword', 'bearer', 'sessionid', 'private_pem', 'iscsiChapCreds', 'cookieJar',
  ])('treats %s as a secret', (key) => {
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
  it('redacts passwords inside URLs and bearer credentials by value, wherever they are', () => {
    expect(redact({ server: 'nfs://admin:hunter2@filer/export', note: 'Bearer abc.def', plain: 'http://host/x' })).toEqual({
      server: `nfs://admin:${REDACTED}@filer/export`,
      note: REDACTED,
      plain: 'http://host/x',
    });
    expect(redact(['see ssh://root:toor@10.0.0.1:22 now'])).toEqual([`see ssh://root:${REDACTED}@10.0.0.1:22 now`]);
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
  it("tells a VM's alerts from its disks': `*` is one token, `>` one or more", () => {
    const vm = 'vdsm.VM.web';
    const disk = 'vdsm.VM.web.Disk.d1';
    const cases: Array<[string, 'glob' | 'regexp', string[], boolean, boolean]> = [
      ['vdsm.VM.*', 'glob', ['vdsm.VM.*'], true, false],
      ['vdsm.VM.>', 'glob', ['vdsm.VM.>'], true, true],
      ['vdsm.VM.*.Disk.*', 'glob', ['vdsm.VM.*.Disk.*'], false, true],
      ['vdsm.VM.web.Disk.*', 'glob', ['vdsm.VM.web.Disk.*'], false, true],
      ['vdsm\\.VM\\.web\\.Disk\\..*', 'regexp', ['vdsm.VM.web.Disk.*'], false, true],
      ['vdsm\\.VM\\.web\\.Disk\\.(d1|d2)', 'regexp', ['vdsm.VM.web.Disk.d1', 'vdsm.VM.web.Disk.d2'], false, true],
      ['vdsm\\.VM\\.web\\.Disk\\.d[0-9]+', 'regexp', ['vdsm.VM.web.Disk.*'], false, true],
      ['vdsm\\.VM\\..*', 'regexp', ['vdsm.VM.*', 'vdsm.VM.*.Disk.*'], true, true],
      ['vdsm\\.VM\\.[a-z]+', 'regexp', ['vdsm.VM.*'], true, false],
      ['vdsm\\.VM\\.web(\\.Disk\\..*)?', 'regexp', ['vdsm.VM.*', 'vdsm.VM.*.Disk.*'], true, true],
    ];
    for (const [source, type, subjects, matchesVm, matchesDisk] of cases) {
      const filter = compileFilter(source, type);
      expect(filter.subjects, source).toEqual(subjects);
      expect([filter.matches(vm), filter.matches(disk)], source).toEqual([matchesVm, matchesDisk]);
    }
  });
  it('refuses a filter shaped like no kind, naming the disk shape too', () => {
    for (const filter of ['vdsm.VM.*.Disk', 'vdsm.VM.*.Nic.*', 'vdsm.VM.*.Disk.*.*']) {
      expect(thrownBy(() => compileFilter(filter, 'glob')), filter).toMatchObject({
        code: ErrorCodes.InvalidFilter,
        message: expect.stringContaining('vdsm.VM.<id>.Disk.<id>'),
      });
    }
    expect(thrownBy(() => compileFilter('vdsm\\.VM\\.web\\.Disk', 'regexp'))).toMatchObject({ code: ErrorCodes.InvalidFilter });
  });
  it('never narrows a regexp away from an alert name it matches, disks included', () => {
    const names = ['vdsm.VM.web', 'vdsm.VM.Disk', 'vdsm.VM.web.Disk.d1', 'vdsm.VM.db.Disk.d2', 'vdsm.VM.aXb', 'vdsm.Storage.Image.i1', 'vdsm.Job.j1'];
    const regexps = [
      'vdsm.VM.a.b', 'vdsm.VM.web.Disk.d1', 'vdsm\\.VM\\.(web|db)\\.Disk\\.d.', '.*Disk.*', 'vdsm\\.VM\\.[a-z]+\\.Disk\\.d1', 'vdsm\\.VM\\.web.*',
      'vdsm\\.VM\\.(web|Disk)', 'vdsm.(VM|Job).*', 'vdsm\\.VM\\.\\w+', 'vdsm\\.VM\\.[^x]+', '(vdsm\\.VM\\.web|vdsm\\.VM\\.db)\\.Disk\\.d[12]',
    ];
    const covers = (subject: string, name: string) => compilePattern(subject.split('.').map((token) => (token === '*' ? '[^.]+' : token === '>' ? '.+' : token.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&'))).join('\\.')).matches(name);
    for (const source of regexps) {
      const filter = compileFilter(source, 'regexp');
      for (const name of names.filter((candidate) => filter.matches(candidate))) {
        expect(filter.subjects.some((subject) => covers(subject, name)), `${source} matches ${name}, covered by ${filter.subjects.join(' ')}`).toBe(true);
      }
    }
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
  // The shapes that take exponential time in a backtracking engine, against the inputs that
  // trigger it, and the ones the trust review found freezing the agent for seconds.
  const REDOS: Array<[string, 'glob' | 'regexp', string]> = [
    ['vdsm\\.VM\\.(a+)+b', 'regexp', `vdsm.VM.${'a'.repeat(60)}`],
    ['vdsm\\.VM\\.((a+))+b', 'regexp', `vdsm.VM.${'a'.repeat(60)}`],
    ['vdsm.VM.(\\w*)*x', 'regexp', `vdsm.VM.${'w'.repeat(60)}`],
    ['vdsm.VM.(a|aa)+c', 'regexp', `vdsm.VM.${'a'.repeat(60)}`],
    ['vdsm.VM.(x|y){2,}z', 'regexp', `vdsm.VM.${'xy'.repeat(40)}`],
    ['vdsm.VM.[0-9a-f-]{8}([0-9a-f-]+)+z', 'regexp', `vdsm.VM.${'0'.repeat(100)}`],
    [`vdsm.VM.${'a*'.repeat(40)}b`, 'glob', `vdsm.VM.${'a'.repeat(120)}`],
  ];
  it.each(REDOS)('matches %s (%s) in linear time, within 100 ms of CPU', (filter, filterType, name) => {
    const started = process.cpuUsage();
    const compiled = compileFilter(filter, filterType);
    for (let i = 0; i < 10; i += 1) expect(compiled.matches(name)).toBe(false);
    const { user, system } = process.cpuUsage(started);
    expect((user + system) / 1000).toBeLessThan(100);
  });
  it('refuses backreferences, which no linear-time engine can run, saying why', () => {
    expect(thrownBy(() => compileFilter('vdsm.VM.(a)\\1', 'regexp'))).toMatchObject({
      code: ErrorCodes.InvalidFilter,
      message: expect.stringContaining('does not compile'),
    });
  });
  it('keeps ordinary regexps', () => {
    // `.*` matches dots too: the VMs' disks are alert names under vdsm.VM as well.
    expect(compileFilter('vdsm\\.(VM|Storage\\.Image)\\..*', 'regexp').subjects).toEqual(['vdsm.Storage.Image.*', 'vdsm.VM.*', 'vdsm.VM.*.Disk.*']);
    expect(compileFilter('vdsm.VM.web-[0-9]+', 'regexp').subjects).toEqual(['vdsm.VM.*']);
  });
  it('reads a long id alternation through the kind wildcard instead of one subject per id', () => {
    const ids = [...'abcdefgh'].flatMap((letter) => [...'0123456789'].map((digit) => `${letter}${digit}`));
    expect(compileFilter(`vdsm.VM.(${ids.join('|')})`, 'regexp').subjects).toEqual(['vdsm.VM.*']);
    expect(compileFilter(`vdsm.VM.(${ids.slice(0, 10).join('|')})`, 'regexp').subjects).toHaveLength(10);
  });
});
