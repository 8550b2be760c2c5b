// How far a crashed agent may skip the stream at its next start. A checkpoint C is sound only if
// every entity's stored snapshot covers all of its records with seq ≤ C, and C ≤ the highest
// sequence the agent has inspected: this tracks, per entity, the lowest sequence its stored
// snapshot may not cover, so the agent can write such a C while it runs, not only at a clean stop.

/** Per entity: from which sequence its stored snapshot may lag, and the highest record seen of it. */
type Dirty = { since: number; through: number };

export class CheckpointTracker {
  readonly #dirty = new Map<string, Dirty>();
  /** The lowest sequence of a record of an entity the runtime does not hold: nothing covers it. */
  #uncovered = Number.POSITIVE_INFINITY;

  /** The entity `key` has (or is about to fold) a record at `seq`: its stored snapshot may not cover it. */
  mark(key: string, seq: number): void {
    const dirty = this.#dirty.get(key);
    if (!dirty) this.#dirty.set(key, { since: seq, through: seq });
    else {
      dirty.since = Math.min(dirty.since, seq);
      dirty.through = Math.max(dirty.through, seq);
    }
  }

  /**
   * A record no held entity folds (another agent's entity, one this agent forgot): no snapshot of
   * this agent covers it, so no checkpoint of this agent may pass it.
   */
  uncovered(seq: number): void {
    this.#uncovered = Math.min(this.#uncovered, seq);
  }

  /**
   * A snapshot of `key` covering its records through `seq` is stored. What was marked after it
   * (a record folded while the save was on its way) still needs the next one.
   */
  saved(key: string, seq: number): void {
    const dirty = this.#dirty.get(key);
    if (!dirty) return;
    if (dirty.through <= seq) this.#dirty.delete(key);
    else dirty.since = Math.max(dirty.since, seq + 1);
  }

  /** The entities whose snapshots may lag behind a record at or before `seq`. */
  laggingAt(seq: number): string[] {
    const keys: string[] = [];
    for (const [key, dirty] of this.#dirty) if (dirty.since <= seq) keys.push(key);
    return keys;
  }

  /** The highest checkpoint sound now, given that the runtime has inspected the stream through `observed`. */
  checkpoint(observed: number): number {
    let bound = Math.min(observed, this.#uncovered - 1);
    for (const { since } of this.#dirty.values()) bound = Math.min(bound, since - 1);
    return Math.max(0, bound);
  }
}
