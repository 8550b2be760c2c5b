// Globs over alert names. Tokens are separated by '.': `*` matches any characters within one
// token, `?` one character, and a last token `>` matches one or more tokens (NATS' own meaning).
import { compilePattern, type Pattern } from './pattern.ts';

const escapeRegExp = (text: string) => text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');

/** The NATS subject that covers the glob, or undefined when the glob is malformed. */
export function globToSubject(glob: string): string | undefined {
  const tokens = glob.split('.');
  if (tokens.some((token) => token === '')) return undefined;
  if (tokens.slice(0, -1).includes('>')) return undefined;
  return tokens.map((token) => (token === '>' ? '>' : /[*?]/.test(token) ? '*' : token)).join('.');
}

/** The glob as a linear-time pattern (`a*a*a*…b` would backtrack polynomially in V8's engine). */
export function globToPattern(glob: string): Pattern {
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
  return compilePattern(source);
}
