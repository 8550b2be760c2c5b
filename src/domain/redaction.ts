/** What a secret's value is replaced with before anything is persisted or logged. */
export const REDACTED = '<redacted>';

const SECRET_WORDS = new Set([
  'password', 'passwd', 'pass', 'passphrase', 'pwd', 'secret', 'token', 'key', 'apikey',
  'credential', 'credentials', 'auth', 'authorization', 'cookie', 'privatekey', 'cert',
]);

/** Splits `sshPrivateKey`, `api_key`, `X-Auth-Token` into lower-case words. */
function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((word) => word.toLowerCase());
}

/** Whether a key names a secret: a whole word of it is one (`sshKey` yes, `keyboard` no). */
export function isSecretKey(name: string): boolean {
  const parts = words(name);
  return parts.some((word) => SECRET_WORDS.has(word)) || SECRET_WORDS.has(parts.join(''));
}

/** A deep copy of `value` with the value of every secret-named key replaced by REDACTED. */
export function redact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item: unknown) => redact(item)) as T;
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) copy[key] = isSecretKey(key) ? REDACTED : redact(item);
  return copy as T;
}
