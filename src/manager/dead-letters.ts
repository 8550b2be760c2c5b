// Where a manager group puts an alert it cannot handle, so one bad message never stalls the group:
// a KV bucket outside `vdsm.>` (the alert stream never captures it), one entry per alert and group,
// keyed `<durableName>.<seq>`. The alert itself stays in the stream at that sequence; the entry
// says why it was set aside. `opstream` or `nats kv ls` read it back.
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { z } from 'zod';

export const DEAD_LETTER_BUCKET = 'opstream_dead_letters';

export const DeadLetter = z.object({
  durableName: z.string(),
  stream: z.string(),
  /** The alert's stream sequence: it is still there to read. */
  seq: z.number().int().min(1),
  subject: z.string(),
  /** How many times the group was given it. */
  deliveries: z.number().int().min(1),
  reason: z.string(),
  time: z.string(),
});
export type DeadLetter = z.infer<typeof DeadLetter>;

export type DeadLetterOptions = { bucket?: string; replicas?: number };

export class DeadLetters {
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection, options: DeadLetterOptions = {}): Promise<DeadLetters> {
    const kv = await new Kvm(nc).create(options.bucket ?? DEAD_LETTER_BUCKET, { replicas: options.replicas ?? 1, history: 1 });
    return new DeadLetters(kv);
  }

  async record(letter: DeadLetter): Promise<void> {
    await this.kv.put(`${letter.durableName}.${letter.seq}`, JSON.stringify(letter));
  }

  /** Every letter a group set aside, oldest first. */
  async list(durableName: string): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    for await (const key of await this.kv.keys(`${durableName}.*`)) {
      const entry = await this.kv.get(key);
      const parsed = entry ? DeadLetter.safeParse(entry.json()) : undefined;
      if (parsed?.success) letters.push(parsed.data);
    }
    return letters.sort((a, b) => a.seq - b.seq);
  }
}

/**
 * The dead letters a manager group set aside, oldest first.
 *
 * @example
 * const letters = await listDeadLetters(nc, 'engine');
 * for (const { seq, reason } of letters) console.log(seq, reason);
 */
export async function listDeadLetters(nc: NatsConnection, durableName: string, options: DeadLetterOptions = {}): Promise<DeadLetter[]> {
  return (await DeadLetters.open(nc, options)).list(durableName);
}
