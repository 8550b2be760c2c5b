// One `kind.id` key for an entity: entityKey in src/domain/subjects.ts, which the alert subject is
// built from too. Nowhere else may spell the key out, or two spellings could drift apart.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { alertSubject, EntityKinds, entityKey, parseAlertSubject } from '../src/domain/subjects.ts';

const ROOT = new URL('..', import.meta.url).pathname;

describe('entityKey', () => {
  it('is kind.id, and the alert subject is vdsm.<entityKey>', () => {
    const ref = { kind: EntityKinds.Image, id: 'img-1' };
    expect(entityKey(ref)).toBe('Storage.Image.img-1');
    expect(alertSubject(ref.kind, ref.id)).toBe(`vdsm.${entityKey(ref)}`);
    expect(parseAlertSubject(`vdsm.${entityKey(ref)}`)).toEqual(ref);
  });

  it('no module spells the key out itself', () => {
    const offenders: string[] = [];
    for (const dir of ['machines', 'actors', 'src']) {
      for (const file of readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })) {
        if (!file.endsWith('.ts') || file.startsWith('viz/client')) continue;
        const path = join(dir, file);
        readFileSync(join(ROOT, path), 'utf8')
          .split('\n')
          .forEach((line, index) => {
            if (/\$\{[\w.]*kind\}\.\$\{[\w.]*id\}/i.test(line) && !path.endsWith('domain/subjects.ts')) offenders.push(`${path}:${index + 1}`);
          });
      }
    }
    expect(offenders, 'use entityKey(ref) from src/domain/subjects.ts').toEqual([]);
  });
});
