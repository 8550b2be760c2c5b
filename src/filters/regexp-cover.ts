// The narrowest NATS subjects that cover a regexp over alert names. Alert names have a known
// shape — each kind's fixed tokens with an id where it names an object (`vdsm.VM.<id>`,
// `vdsm.VM.<id>.Disk.<id>`), ids without dots — so for each kind we walk the regexp's literal
// beginning along that kind's tokens: literal tokens must agree, and an id the regexp spells out
// whole (`vdsm.VM.(a|b)`, `vdsm\.VM\.web\.Disk\..*`) narrows the cover to it; everything the
// regexp leaves open becomes `*`. The regexp itself still decides every delivery: this only
// narrows what the server sends.
import { ENTITY_KINDS, EntityId, kindSubjectPattern, kindSubjectTokens, type EntityKind } from '../domain/subjects.ts';

/** One position of a regexp's literal beginning: a character, or `.` (any character). */
type Atom = string | typeof ANY;
const ANY = Symbol('any');

/**
 * A branch's literal beginning; `complete` when nothing follows it (the match ends there).
 * `dotless` when what follows cannot match a `.` (`web-[0-9]+`): the name has no more tokens.
 */
type Literal = { atoms: Atom[]; complete: boolean; dotless?: boolean };

/** Characters, non-negated classes of them, quantifiers and groups: none can match a `.`. */
const DOTLESS_REST = /^(?:[A-Za-z0-9_+*?{},()|-]|\[(?!\^)[A-Za-z0-9_-]*\])*$/;
const stopped = (atoms: Atom[], rest: string): Literal[] => [{ atoms, complete: false, dotless: DOTLESS_REST.test(rest) }];

/** Past this many exact subjects for one kind, that kind's wildcard is the cheaper filter. */
const MAX_EXACT_SUBJECTS_PER_KIND = 64;

export function regexpSubjects(source: string): string[] {
  const literals = splitTopLevel(source, '|').flatMap(parseBranch);
  const subjects = new Set<string>();
  for (const kind of ENTITY_KINDS) {
    const covering = new Set<string>();
    for (const literal of literals) {
      const subject = coverUnder(kind, literal);
      if (subject) covering.add(subject);
    }
    if (covering.size > MAX_EXACT_SUBJECTS_PER_KIND) {
      covering.clear();
      covering.add(kindSubjectPattern(kind));
    }
    for (const subject of covering) subjects.add(subject);
  }
  // Multi-filter consumers reject overlapping subjects. Within a kind a cover is exact ids then
  // only `*` (see coverUnder), so two covers either nest or are disjoint: keep the widest.
  const all = [...subjects];
  return all.filter((subject) => !all.some((other) => other !== subject && subsumes(other, subject))).sort();
}

/** Whether NATS subject `wide` matches everything `narrow` does (same length, no `>` here). */
function subsumes(wide: string, narrow: string): boolean {
  const w = wide.split('.');
  const n = narrow.split('.');
  return w.length === n.length && w.every((token, i) => token === '*' || token === n[i]);
}

/**
 * The subject covering what `literal` can match among `kind`'s alert names, or undefined when it
 * can match none of them. Once the literal beginning ends, or an id holds an "any character"
 * (which might stand for a `.`), the rest is left open: every later id becomes `*`, literal
 * tokens stay what the kind says they are.
 */
function coverUnder(kind: EntityKind, { atoms, complete, dotless }: Literal): string | undefined {
  const tokens = kindSubjectTokens(kind);
  // A whole literal matches names of exactly its length: too short for this kind, none of them.
  if (complete && atoms.length < tokens.reduce((length, token) => length + token.length + 1, -1)) return undefined;
  const out: string[] = [];
  let p = 0;
  // Where the literal stops, the rest is open; a rest that holds no `.` cannot reach another token.
  const open = (from: number, needsDot: boolean) => (dotless && needsDot ? undefined : [...out, ...tokens.slice(from)].join('.'));
  for (let t = 0; t < tokens.length; t += 1) {
    const token = tokens[t] as string;
    const last = t === tokens.length - 1;
    if (token !== '*') {
      for (const char of token) {
        if (p >= atoms.length) return complete ? undefined : open(t, !last);
        if (atoms[p] !== ANY && atoms[p] !== char) return undefined;
        p += 1;
      }
      out.push(token);
    } else {
      let id = '';
      while (p < atoms.length && atoms[p] !== ANY && atoms[p] !== '.') id += atoms[p++] as string;
      if (p >= atoms.length) {
        if (!complete) return open(t, !last);
        if (!last) return undefined;
        return EntityId.safeParse(id).success ? [...out, id].join('.') : undefined;
      }
      if (atoms[p] === ANY) return open(t, false);
      // A literal '.': the id ends here.
      if (last || !EntityId.safeParse(id).success) return undefined;
      out.push(id);
    }
    if (last) return p === atoms.length ? out.join('.') : undefined;
    // The separator before the next token.
    if (p >= atoms.length) return complete ? undefined : open(t + 1, true);
    if (token === '*') {
      p += 1; // the literal '.' that ended the id
    } else {
      if (atoms[p] !== ANY && atoms[p] !== '.') return undefined;
      p += 1;
    }
  }
  return out.join('.');
}

/** Splits at `separator` outside groups, classes and escapes. */
function splitTopLevel(source: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let inClass = false;
  let start = 0;
  for (let i = 0; i < source.length; i += 1) {
    const char = source[i];
    if (char === '\\') i += 1;
    else if (inClass) inClass = char !== ']';
    else if (char === '[') inClass = true;
    else if (char === '(') depth += 1;
    else if (char === ')') depth -= 1;
    else if (char === separator && depth === 0) {
      parts.push(source.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(source.slice(start));
  return parts;
}

const QUANTIFIER = /[*+?{]/;
const SPECIAL = /[[\]{}()*+?^$|]/;

/** Expanding groups multiplies beginnings; past this many, a branch keeps its common beginning. */
const MAX_LITERALS = 256;

/**
 * The literal beginnings of one top-level branch. A group of literal alternatives expands into
 * one beginning per alternative — `vdsm.(VM|Storage.Image).x` begins with `vdsm.VM.x` or
 * `vdsm.Storage.Image.x` — wherever it stands, as long as it is not repeated.
 */
function parseBranch(branch: string): Literal[] {
  let source = branch.startsWith('^') ? branch.slice(1) : branch;
  if (source.endsWith('$') && !source.endsWith('\\$')) source = source.slice(0, -1);
  const atoms: Atom[] = [];
  let i = 0;
  while (i < source.length) {
    const char = source[i] as string;
    let atom: Atom;
    let next = i + 1;
    if (char === '\\') {
      const escaped = source[i + 1];
      // \d, \w, \b ... are classes or assertions, not characters.
      if (escaped === undefined || /[A-Za-z0-9]/.test(escaped)) return stopped(atoms, source.slice(i));
      atom = escaped;
      next = i + 2;
    } else if (char === '.') {
      atom = ANY;
    } else if (char === '(') {
      const group = literalGroup(source.slice(i));
      if (!group || QUANTIFIER.test(source[i + group.length] ?? '')) return stopped(atoms, source.slice(i));
      const rest = parseBranch(source.slice(i + group.length));
      const expanded = group.alternatives.flatMap((alternative) =>
        rest.map((literal) => ({ ...literal, atoms: [...atoms, ...alternative, ...literal.atoms] })),
      );
      return expanded.length <= MAX_LITERALS ? expanded : stopped(atoms, source.slice(i));
    } else if (SPECIAL.test(char)) {
      return stopped(atoms, source.slice(i));
    } else {
      atom = char;
    }
    if (QUANTIFIER.test(source[next] ?? '')) return stopped(atoms, source.slice(i));
    atoms.push(atom);
    i = next;
  }
  return [{ atoms, complete: true }];
}

/** `(a|b)` or `(?:a|b)` of plain literals at the start of `rest`: its alternatives and length. */
function literalGroup(rest: string): { alternatives: Atom[][]; length: number } | undefined {
  const close = rest.indexOf(')');
  if (close < 0) return undefined;
  const body = rest.slice(1, close).replace(/^\?:/, '');
  if (body.startsWith('?') || body.includes('(')) return undefined;
  const alternatives: Atom[][] = [];
  for (const alternative of body.split('|')) {
    if (alternative.includes('^') || alternative.includes('$')) return undefined;
    const [literal] = parseBranch(alternative);
    if (!literal?.complete || literal.atoms.includes(ANY)) return undefined;
    alternatives.push(literal.atoms);
  }
  return { alternatives, length: close + 1 };
}
