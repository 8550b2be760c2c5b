// A subscription filter over alert names, as the seed defines it: a glob (`vdsm.VM.*`) or a
// regexp (`vdsm.VM.(a|b)`). Either becomes the narrowest set of NATS subjects that covers it,
// so the server sends only what may match, plus an exact test for what NATS cannot express.
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import { ENTITY_KINDS, kindSubjectPattern, kindSubjectShape } from '../domain/subjects.ts';
import { globToPattern, globToSubject } from './glob.ts';
import { compilePattern, type Pattern } from './pattern.ts';
import { regexpSubjects } from './regexp-cover.ts';

export const FILTER_TYPES = ['glob', 'regexp'] as const;
export type FilterType = (typeof FILTER_TYPES)[number];

export const MAX_FILTER_LENGTH = 256;

export type AlertFilter = {
  filter: string;
  filterType: FilterType;
  /** Non-overlapping NATS filter subjects that cover every alert name the filter matches. */
  subjects: string[];
  /** The exact test of an alert name against the filter. */
  matches(alertName: string): boolean;
};

const invalid = (message: string) => new OpstreamError(ErrorCodes.InvalidFilter, message);

export function compileFilter(filter: unknown, filterType: unknown = 'glob'): AlertFilter {
  if (typeof filter !== 'string' || filter.length === 0) throw invalid('filter must be a non-empty string');
  if (filter.length > MAX_FILTER_LENGTH) {
    throw new OpstreamError(ErrorCodes.LimitExceeded, `filter is ${filter.length} characters; the limit is ${MAX_FILTER_LENGTH}`);
  }
  if (filterType === 'glob') return compileGlob(filter);
  if (filterType === 'regexp') return compileRegexp(filter);
  throw invalid(`filterType must be "glob" or "regexp", not ${JSON.stringify(filterType)}`);
}

function compileGlob(filter: string): AlertFilter {
  const subject = globToSubject(filter);
  if (!subject) throw invalid(`glob ${JSON.stringify(filter)} is malformed: '>' may only be the last token and tokens may not be empty`);
  if (!ENTITY_KINDS.some((kind) => subjectsCollide(subject, kindSubjectPattern(kind)))) throw noAlertMatches(filter);
  const exact = globToPattern(filter);
  return { filter, filterType: 'glob', subjects: [subject], matches: (name) => exact.matches(name) };
}

function compileRegexp(filter: string): AlertFilter {
  const exact = compileRegexpPattern(filter);
  const subjects = regexpSubjects(filter);
  if (subjects.length === 0) throw noAlertMatches(filter);
  return { filter, filterType: 'regexp', subjects, matches: (name) => exact.matches(name) };
}

/** A caller's regexp on the linear-time engine, or InvalidFilter saying why it does not compile. */
export function compileRegexpPattern(filter: string): Pattern {
  try {
    return compilePattern(filter);
  } catch (error) {
    throw invalid(`regexp ${JSON.stringify(filter)} does not compile: ${(error as Error).message} (RE2 syntax: no backreferences or lookaround)`);
  }
}

function noAlertMatches(filter: string): OpstreamError {
  const shapes = ENTITY_KINDS.map(kindSubjectShape).join(', ');
  return invalid(`filter ${JSON.stringify(filter)} can match no alert name (they are ${shapes})`);
}

/** Whether two NATS subjects (with `*` and `>`) can match a common subject. */
export function subjectsCollide(a: string, b: string): boolean {
  const left = a.split('.');
  const right = b.split('.');
  for (let i = 0; i < Math.max(left.length, right.length); i += 1) {
    const x = left[i];
    const y = right[i];
    if (x === '>' || y === '>') return x !== undefined && y !== undefined;
    if (x === undefined || y === undefined) return false;
    if (x !== '*' && y !== '*' && x !== y) return false;
  }
  return true;
}
