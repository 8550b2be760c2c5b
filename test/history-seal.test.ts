// The seal is what tells a record an agent wrote from one it did not: it must refuse every
// variant of a seal that is not exactly the one the key gives, whatever a decoder would tolerate.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { historySeal, sealFromRecipe, sealRecipe } from '../src/security/history-seal.ts';

const subject = 'vdsm.VM.seal-test';
const body = Buffer.from('{"alertName":"vdsm.VM.seal-test","revision":1}');

describe('historySeal', () => {
  const seal = historySeal(randomBytes(32));
  const sealed = seal.seal(subject, body);

  it('verifies the seal it made, from bytes or from the same text', () => {
    expect(sealed).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(seal.verify(subject, body, sealed, 7)).toBe(true);
    expect(seal.verify(subject, body.toString(), sealed, 7)).toBe(true);
  });

  it('refuses the seal under another subject, over another body, or made with another key', () => {
    expect(seal.verify('vdsm.VM.other', body, sealed, 7)).toBe(false);
    expect(seal.verify(subject, Buffer.from(body.toString().replace('1', '2')), sealed, 7)).toBe(false);
    expect(historySeal(randomBytes(32)).verify(subject, body, sealed, 7)).toBe(false);
  });

  it('refuses every altered spelling of a valid seal, even those a base64 decoder reads as the same bytes', () => {
    const last = sealed.at(-1) === 'A' ? 'B' : 'A';
    const variants = {
      'one character changed': sealed.slice(0, -1) + last,
      'first character changed': (sealed[0] === 'A' ? 'B' : 'A') + sealed.slice(1),
      padded: `${sealed}=`,
      'standard base64': Buffer.from(sealed, 'base64url').toString('base64'),
      'a space appended': `${sealed} `,
      truncated: sealed.slice(0, -1),
      'twice as long': sealed + sealed,
    };
    for (const [name, variant] of Object.entries(variants)) {
      if (variant === sealed) continue; // standard base64 of bytes with no + or / reads the same
      expect(seal.verify(subject, body, variant, 7), name).toBe(false);
    }
  });

  it('accepts a missing seal only at sequences adopted from before the installation had a key', () => {
    const adopting = historySeal(randomBytes(32), { unsealedThrough: 10 });
    expect(adopting.verify(subject, body, undefined, 10)).toBe(true);
    expect(adopting.verify(subject, body, '', 10)).toBe(true);
    expect(adopting.verify(subject, body, undefined, 11)).toBe(false);
    expect(adopting.verify(subject, body, undefined)).toBe(false);
    expect(seal.verify(subject, body, undefined, 1)).toBe(false);
  });

  it('rebuilt from its recipe (as replay workers do), checks exactly what the original checks', () => {
    const recipe = sealRecipe(seal);
    expect(recipe).toBeDefined();
    const rebuilt = sealFromRecipe(recipe!);
    expect(rebuilt.seal(subject, body)).toBe(sealed);
    expect(rebuilt.verify(subject, body, `${sealed}=`, 7)).toBe(false);
  });

  it('refuses a key shorter than 16 bytes', () => {
    expect(() => historySeal(randomBytes(15))).toThrow(/at least 16 bytes/);
  });
});
