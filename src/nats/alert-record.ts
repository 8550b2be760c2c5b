// One stored message of the alert stream judged as history: sealed by an agent of this
// installation (when the reader holds the key), JSON, an alert, and stored under its own name —
// or, in words, why it is not. Recovery, catch-ups, feeds and the shared read all judge alike.
import { Alert } from '../domain/alert.ts';
import { isExactAlert } from '../domain/alert-shape.ts';
import { SEAL_HEADER, type HistorySeal } from '../security/history-seal.ts';

/** What a JetStream message gives a reader: enough to judge it without the client's message type. */
export type StoredMessage = { seq: number; subject: string; data: Uint8Array; headers?: { get(name: string): string } };

// One decoder for every record: replay judges a million, and a decoder each was a visible cost.
const utf8 = new TextDecoder();

/** The seal the message carries, if any. */
export function sealOf(message: StoredMessage): string | undefined {
  return message.headers?.get(SEAL_HEADER) || undefined;
}

/** The message as an alert, or why it is not one. Without `seal`, only its shape is checked. */
export function judgeAlertRecord(message: StoredMessage, seal: HistorySeal | undefined): Alert | string {
  const { seq, subject, data } = message;
  const sealed = sealOf(message);
  if (seal && !seal.verify(subject, data, sealed, seq)) {
    return sealed ? 'its seal does not match: not written by an agent of this installation, or altered' : 'it carries no seal: not written by an agent';
  }
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(data));
  } catch (error) {
    return `not JSON (${(error as Error).message})`;
  }
  // The common case skips zod; anything the fast path is not sure of gets the schema's verdict.
  const parsed = isExactAlert(json) ? { success: true as const, data: json } : Alert.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `not an alert (${issue?.path.join('.') || 'body'}: ${issue?.message})`;
  }
  return parsed.data.alertName === subject ? parsed.data : `names ${JSON.stringify(parsed.data.alertName)} but is stored under ${subject}`;
}
