// Globs over alert names. Tokens are separated by '.': `*` matches any characters within one
// token, `?` one character, and a last token `>` matches one or more tokens (NATS' own meaning).

const escapeRegExp = (text: string) => text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');

/** The NATS subject that covers the glob, or undefined when the glob is malformed. */
export function globToSubject(glob: string): string | undefined {
  const tokens = glob.split('.');
  if (tokens.some((token) => token === '')) return undefined;
  if (tokens.slice(0, -1).includes('>')) return undefined;
  return tokens.map((token) => (token === '>' ? '>' : /[*?]/.test(token) ? '*' : token)).join('.');
}

export function globToRegExp(glob: string): RegExp {
  const source = glob
    .split('.')
    .map((token) =>
      token === '>'
        ? '[^.]+(?:\\.[^.]+)*'
        : token
            .split('')
            .map((char) => (char === '*' ? '[^.]*' : char === '?' ? '[^.]' : escapeRegExp(char)))
            .join(''),
    )
    .join('\\.');
  return new RegExp(`^${source}$`, 'u');
}
