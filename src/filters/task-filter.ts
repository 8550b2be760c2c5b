// Filters over task ids or method names, as the seed's getRunningTasks(filter, filterType) takes
// them: the same glob and regexp syntax and the same linear-time engine as alert filters, without
// the alert-subject narrowing.
import { ErrorCodes, OpstreamError } from '../domain/errors.ts';
import { compileRegexpPattern, MAX_FILTER_LENGTH, type FilterType } from './alert-filter.ts';
import { globToPattern } from './glob.ts';

export function compileTaskFilter(filter: string, filterType: FilterType): (value: string) => boolean {
  if (filter.length > MAX_FILTER_LENGTH) {
    throw new OpstreamError(ErrorCodes.LimitExceeded, `filter is ${filter.length} characters; the limit is ${MAX_FILTER_LENGTH}`);
  }
  if (filterType === 'glob') {
    // A lone `*` means every task, also across the dots of method names (VM.pause).
    if (filter === '*') return () => true;
    const pattern = globToPattern(filter);
    return (value) => pattern.matches(value);
  }
  const pattern = compileRegexpPattern(filter);
  return (value) => pattern.matches(value);
}
