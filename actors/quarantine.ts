// Records that cannot be history — unsealed, unparseable, under no entity's subject, a snapshot
// that does not match its stream — are set aside here instead of stopping whoever met them. Each
// is logged once with where it is, counted, and the last few are kept for an operator to see
// (`GET /healthz` shows them).
import type { Logger } from '../src/log.ts';

export type QuarantineEntry = {
  /** `stream` for a message of the alert stream, `snapshot` for a KV snapshot entry. */
  source: 'stream' | 'snapshot';
  /** The stream sequence, or the snapshot's KV revision. */
  seq: number;
  /** The subject, or the snapshot's key. */
  subject: string;
  reason: string;
};

export type QuarantineSummary = { count: number; recent: QuarantineEntry[] };

const KEPT = 20;
const REMEMBERED = 10_000;

export class Quarantine {
  #count = 0;
  readonly #recent: QuarantineEntry[] = [];
  /** What was already logged: a record met by recovery, a feed and a catch-up is one record. */
  readonly #seen = new Set<string>();

  constructor(private readonly logger: Logger) {}

  add(entry: QuarantineEntry): void {
    const key = `${entry.source}:${entry.subject}:${entry.seq}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    if (this.#seen.size > REMEMBERED) this.#seen.delete(this.#seen.values().next().value as string);
    this.#count += 1;
    this.#recent.push(entry);
    if (this.#recent.length > KEPT) this.#recent.shift();
    this.logger.warn(`quarantined a ${entry.source} record`, { ...entry });
  }

  get summary(): QuarantineSummary {
    return { count: this.#count, recent: [...this.#recent] };
  }
}
