// The narrowest NATS subjects that cover a regexp over alert names. Alert names have a known
// shape — `vdsm.<Kind>.<id>` for a fixed set of kinds, ids without dots — so for each kind we ask
// whether the regexp's literal beginning can match that kind's prefix. Where the regexp ends in
// literal ids (`vdsm.VM.(a|b)`) the cover is those exact subjects; otherwise the kind's wildcard.
// The regexp itself still decides every delivery: this only narrows what the server sends.
import { ALERT_ROOT, ENTITY_KINDS, EntityId } from '../domain/subjects.ts';

/** One position of a regexp's literal beginning: a character, or `.` (any character). */
type Atom = string | typeof ANY;
const ANY = Symbol('any');

/** A branch's literal beginning; `complete` when nothing follows it (the match ends there). */
type Literal = { atoms: Atom[]; complete: boolean };

/** Past this many exact subjects for one kind, that kind's wildcard is the cheaper filter. */
const MAX_EXACT_SUBJECTS_PER_KIND = 64;

export function regexpSubjects(source: string): string[] {
  const literals = splitTopLevel(source, '|').flatMap(parseBranch);
  const subjects = new Set<string>();
  for (const kind of ENTITY_KINDS) {
    const prefix = `${ALERT_ROOT}.${kind}.`;
    const covering = new Set<string>();
    for (const literal of literals) {
      const subject = coverUnder(prefix, literal);
      if (subject) covering.add(subject);
    }
    if (covering.size > MAX_EXACT_SUBJECTS_PER_KIND) {
      covering.clear();
      covering.add(`${prefix}*`);
    }
    for (const subject of covering) subjects.add(subject);
  }
  // Multi-filter consumers reject overlapping subjects: a kind's wildcard absorbs its exact ids.
  return [...subjects].filter((subject) => subject.endsWith('.*') || !subjects.has(subject.replace(/[^.]+$/, '*'))).sort();
}

function coverUnder(prefix: string, { atoms, complete }: Literal): string | undefined {
  const overlap = Math.min(prefix.length, atoms.length);
  for (let i = 0; i < overlap; i += 1) if (atoms[i] !== ANY && atoms[i] !== prefix[i]) return undefined;
  if (!complete) return `${prefix}*`;
  if (atoms.length <= prefix.length) return undefined;
  const rest = atoms.slice(prefix.length);
  if (rest.includes(ANY)) return `${prefix}*`;
  const id = rest.join('');
  return EntityId.safeParse(id).success ? `${prefix}${id}` : undefined;
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
      if (escaped === undefined || /[A-Za-z0-9]/.test(escaped)) return [{ atoms, complete: false }];
      atom = escaped;
      next = i + 2;
    } else if (char === '.') {
      atom = ANY;
    } else if (char === '(') {
      const group = literalGroup(source.slice(i));
      if (!group || QUANTIFIER.test(source[i + group.length] ?? '')) return [{ atoms, complete: false }];
      const rest = parseBranch(source.slice(i + group.length));
      const expanded = group.alternatives.flatMap((alternative) =>
        rest.map((literal) => ({ atoms: [...atoms, ...alternative, ...literal.atoms], complete: literal.complete })),
      );
      return expanded.length <= MAX_LITERALS ? expanded : [{ atoms, complete: false }];
    } else if (SPECIAL.test(char)) {
      return [{ atoms, complete: false }];
    } else {
      atom = char;
    }
    if (QUANTIFIER.test(source[next] ?? '')) return [{ atoms, complete: false }];
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
