// The one matcher every filter uses, globs and regexps alike: RE2JS, a port of RE2, matches in
// time linear in the input whatever the pattern, so no filter a caller sends can stall the agent
// (V8's backtracking engine takes exponential time on `(a+)+b`). RE2 has no backreferences or
// lookaround; a pattern that uses them does not compile, and the caller is told why.
import { RE2JS } from 're2js';

export type Pattern = { source: string; matches(text: string): boolean };

/** Compiles `source` to match whole strings; throws with RE2's own message when it cannot. */
export function compilePattern(source: string): Pattern {
  const compiled = RE2JS.compile(source);
  return { source, matches: (text) => compiled.matches(text) };
}
