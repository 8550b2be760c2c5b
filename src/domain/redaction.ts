// Secrets never reach the stream, a log or a TaskInfo: every kwarg is passed through `redact`
// before anything is built from it. A key is secret when one of its words *contains* a secret
// stem (`dbPassword`, `sshkey`, `privkey`, `sessionid`), so new spellings are caught by default;
// a value is secret when it is a URL with a password in it or a bearer credential.

/** What a secret's value is replaced with before anything is persisted or logged. */
export const REDACTED = '<redacted>';

const SECRET_STEMS = ['pass', 'pwd', 'secret', 'token', 'key', 'cred', 'auth', 'cookie', 'cert', 'session', 'bearer', 'private'];

/** Words that contain a stem but name no secret: a VM's `keyboard` layout, PCI `passthrough`. */
const NOT_SECRET = new Set(['keyboard', 'keyboards', 'keymap', 'keyword', 'keywords', 'passthrough', 'bypass', 'author', 'authors', 'monkey', 'passenger', 'passengers', 'compass']);

/** Splits `sshPrivateKey`, `api_key`, `X-Auth-Token` into lower-case words. */
function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((word) => word.toLowerCase());
}

/** Whether a key names a secret: a word of it contains a secret stem (`keyboard` does not count). */
export function isSecretKey(name: string): boolean {
  let secret = judgedKeys.get(name);
  if (secret === undefined) {
    secret = words(name).some((word) => !NOT_SECRET.has(word) && SECRET_STEMS.some((stem) => word.includes(stem)));
    // Bounded: keys come from callers, and a caller could send a new one with every call.
    if (judgedKeys.size >= JUDGED_KEYS_KEPT) judgedKeys.clear();
    judgedKeys.set(name, secret);
  }
  return secret;
}

/** Every call's event is redacted on the write path, and its keys are few: each is judged once. */
const judgedKeys = new Map<string, boolean>();
const JUDGED_KEYS_KEPT = 4_096;

/** After a `://`: userinfo with a password, bounded so no value can make the scan slow. */
const USERINFO_PASSWORD = /([^/\s:@]{0,256}):[^@\s/]{0,256}@/y;

/**
 * `nfs://user:pw@host/x` → `nfs://user:<redacted>@host/x`; `Bearer abc` → `<redacted>`. Only the
 * text right after each `://` is examined — a regexp over the whole value restarted at every
 * letter, and a 16,000-letter kwarg cost the agent half a second.
 */
export function redactValue(value: string): string {
  if (/^\s*bearer\s+\S/i.test(value)) return REDACTED;
  let result = '';
  let copied = 0;
  for (let at = value.indexOf('://'); at >= 0; at = value.indexOf('://', at + 3)) {
    USERINFO_PASSWORD.lastIndex = at + 3;
    const match = USERINFO_PASSWORD.exec(value);
    if (!match) continue;
    result += `${value.slice(copied, at + 3)}${match[1]}:${REDACTED}@`;
    copied = USERINFO_PASSWORD.lastIndex;
    at = copied - 3;
  }
  return copied === 0 ? value : result + value.slice(copied);
}

/** A deep copy of `value` with secret-named keys' values and secret-looking strings redacted. */
export function redact<T>(value: T): T {
  if (typeof value === 'string') return redactValue(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => redact(item)) as T;
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) copy[key] = isSecretKey(key) ? REDACTED : redact(item);
  return copy as T;
}
