// The one rule of the maps held to a bound by recency (src/newest.ts): the DNS answers, the DKIM
// keys, the late DNS answers, the kept DMARC questions and the repeated reply texts all use it.
import { describe, expect, it } from 'vitest';
import { setNewest } from '../../src/newest.js';

describe('setNewest', () => {
  it('keeps at most max entries, letting the one set longest ago go first', () => {
    const map = new Map<string, number>();
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) setNewest(map, key, i, 3);
    expect([...map]).toEqual([
      ['b', 1],
      ['c', 2],
      ['d', 3],
    ]);
  });

  it('makes a key set again the newest, without evicting another for it', () => {
    const map = new Map([
      ['a', 0],
      ['b', 1],
      ['c', 2],
    ]);
    setNewest(map, 'a', 10, 3);
    expect([...map.keys()]).toEqual(['b', 'c', 'a']);
    setNewest(map, 'd', 3, 3);
    expect([...map]).toEqual([
      ['c', 2],
      ['a', 10],
      ['d', 3],
    ]);
  });

  it('brings a map over its bound (a smaller max than before) back under it', () => {
    const map = new Map(Array.from({ length: 10 }, (_, i) => [i, i] as [number, number]));
    setNewest(map, 99, 99, 4);
    expect([...map.keys()]).toEqual([7, 8, 9, 99]);
  });
});
