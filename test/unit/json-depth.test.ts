// How deep a JSON body nests, counted without recursion (src/api/routes.ts): JSON_TOO_DEEP's test.
import { describe, expect, it } from 'vitest';
import { nestsDeeper, parseJsonBody } from '../../src/api/routes.js';

describe('nestsDeeper', () => {
  it.each([
    ['{}', 1],
    ['[[],[[]]]', 3],
    ['{"a":[{"b":{}}]}', 4],
    ['"[[[["', 0],
    ['["\\"[[[", {}]', 2],
    ['["\\\\", [[]]]', 3],
    ['"\\\\\\"[["', 0],
  ])('%s nests %i levels', (text, levels) => {
    expect(nestsDeeper(text, levels)).toBe(false);
    if (levels > 0) expect(nestsDeeper(text, levels - 1)).toBe(true);
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it('a million levels: refused at once, without recursion', () => {
    const text = `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`;
    expect(nestsDeeper(text, 32)).toBe(true);
    expect(() => parseJsonBody(text)).toThrow(expect.objectContaining({ code: 'JSON_TOO_DEEP' }));
  });

  it('an unterminated string is left to JSON.parse', () => {
    expect(nestsDeeper('["[[[[', 2)).toBe(false);
    expect(() => parseJsonBody('["[[[[')).toThrow(expect.objectContaining({ code: 'MALFORMED_JSON' }));
  });
});
