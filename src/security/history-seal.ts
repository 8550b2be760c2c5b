// Tells a record the agent wrote from one it did not. Every alert and snapshot the agent writes
// carries an HMAC-SHA256 of its subject (or key) and body under the history key, so a server that
// lets someone else write `vdsm.>` or the snapshot bucket (a misconfiguration, a leaked manager
// identity) still cannot make recovery adopt a forged record: defence in depth behind nats.conf.
// A MAC, not a public-key signature: agents are the only readers that need to verify, and
// verifying must keep up with replaying a million alerts (HMAC is ~100× faster than Ed25519).
import { createHmac } from 'node:crypto';

/** The NATS header an alert's seal travels in. */
export const SEAL_HEADER = 'Opstream-Seal';

export type HistorySeal = {
  /** The seal of `body` stored under `subject` (a stream subject or a KV key). */
  seal(subject: string, body: string | Uint8Array): string;
  /**
   * Whether `seal` is the one this key gives `body` under `subject`. A record at a stream
   * sequence the installation adopted from before it had a key may carry no seal at all.
   */
  verify(subject: string, body: string | Uint8Array, seal: string | undefined, seq?: number): boolean;
};

/**
 * What rebuilds the same seal in another thread (the workers that replay history): structured-
 * clonable, so it can travel in a worker's `workerData`. It holds the key: never log it.
 */
export type SealRecipe = { key: Uint8Array; unsealedThrough: number };

/**
 * The recipes of the seals made here, beside them rather than on them: the seal object shows
 * nothing new (nothing to print, spread or serialize by mistake), and only code that asks by name
 * gets the key.
 */
const recipes = new WeakMap<HistorySeal, SealRecipe>();

export function historySeal(key: Buffer, options: { unsealedThrough?: number } = {}): HistorySeal {
  const unsealedThrough = options.unsealedThrough ?? 0;
  if (key.length < 16) throw new Error('the history key must be at least 16 bytes');
  const mac = (subject: string, body: string | Uint8Array) => createHmac('sha256', key).update(subject).update('\n').update(body).digest('base64url');
  const sealer: HistorySeal = {
    seal: mac,
    verify(subject, body, seal, seq) {
      if (!seal) return seq !== undefined && seq <= unsealedThrough;
      // Compared as the text the header carries: decoding it and allocating the digest as a
      // Buffer was a third of a check, and replay checks every record. Stricter than decoding,
      // which would also accept padding or stray characters no agent ever writes.
      return sameText(mac(subject, body), seal);
    },
  };
  recipes.set(sealer, { key, unsealedThrough });
  return sealer;
}

/** Whether two strings are equal, in a time that tells nothing of where they first differ. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** How to rebuild `seal` elsewhere (a copy of its key), or undefined for a seal not made by historySeal. */
export function sealRecipe(seal: HistorySeal): SealRecipe | undefined {
  const recipe = recipes.get(seal);
  return recipe && { key: Uint8Array.from(recipe.key), unsealedThrough: recipe.unsealedThrough };
}

/** The seal a recipe stands for: the same key, the same records adopted unsealed. */
export function sealFromRecipe(recipe: SealRecipe): HistorySeal {
  return historySeal(Buffer.from(recipe.key.buffer, recipe.key.byteOffset, recipe.key.byteLength), { unsealedThrough: recipe.unsealedThrough });
}
