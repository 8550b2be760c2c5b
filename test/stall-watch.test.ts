// The runtime's one timer for every running work's stall limit: a touched work's deadline moves,
// a silent one stalls exactly once, a forgotten one never does. On fake time: exact, whatever the load.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StallWatch } from '../actors/stall-watch.ts';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('StallWatch', () => {
  it('stalls a silent work once, keeps one that reports, and forgets a stopped one', () => {
    const watch = new StallWatch();
    const stalled: string[] = [];
    const silent = {};
    const reporting = {};
    const stopped = {};
    watch.watch(silent, 60, () => stalled.push('silent'));
    watch.watch(reporting, 60, () => stalled.push('reporting'));
    watch.watch(stopped, 60, () => stalled.push('stopped'));
    watch.forget(stopped);
    for (let i = 0; i < 8; i += 1) {
      vi.advanceTimersByTime(20);
      watch.touch(reporting);
    }
    expect(stalled).toEqual(['silent']);
    vi.advanceTimersByTime(59);
    expect(stalled).toEqual(['silent']);
    vi.advanceTimersByTime(1);
    expect(stalled).toEqual(['silent', 'reporting']);
    vi.advanceTimersByTime(1_000);
    expect(stalled).toEqual(['silent', 'reporting']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('wakes for a shorter limit watched after a longer one, and sleeps again for the longer', () => {
    const watch = new StallWatch();
    const stalled: string[] = [];
    watch.watch({}, 60_000, () => stalled.push('long'));
    watch.watch({}, 30, () => stalled.push('short'));
    vi.advanceTimersByTime(30);
    expect(stalled).toEqual(['short']);
    vi.advanceTimersByTime(59_969);
    expect(stalled).toEqual(['short']);
    vi.advanceTimersByTime(1);
    expect(stalled).toEqual(['short', 'long']);
  });

  it('keeps no timer once nothing is watched', () => {
    const watch = new StallWatch();
    const work = {};
    watch.watch(work, 100, () => undefined);
    expect(vi.getTimerCount()).toBe(1);
    watch.forget(work);
    expect(vi.getTimerCount()).toBe(0);
  });
});
