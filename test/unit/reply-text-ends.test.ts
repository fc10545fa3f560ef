// The end-anchored tests of patterns.ts look at a line's end first (mayEndAttribution: the last
// character before the decoration; endsSentence: the last character) instead of running their
// patterns from every position. Generated lines, seeded, against what those tests must answer:
// every language's verb, followed by any decoration, may end an attribution; a line whose last
// character before the decoration ends no verb (and no colon, bracket, rule or address) may not;
// endsSentence agrees with its pattern run over the whole line.
import { describe, expect, it } from 'vitest';
import { LANGUAGES } from '../../src/mail/reply-text/languages.js';
import { endsSentence, mayEndAttribution } from '../../src/mail/reply-text/patterns.js';
import { mulberry32 } from '../helpers/random.js';

const random = mulberry32(20261202);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const VERBS = [...new Set(LANGUAGES.flatMap((l) => l.wrote ?? []))];
const LAST = new Set(VERBS.flatMap((v) => [...v].at(-1)!).flatMap((c) => [c, c.toLowerCase(), c.toUpperCase()]));
/** What may follow a verb: whitespace (U+3000 and tabs among it), then dashes and rules ("wrote: ----"). */
const SPACES = [' ', '\t', '\u3000', '\u00a0'];
const DASHES = ['-', '–', '—', '_', '=', '~', '*'];
const run = (chars: string[], most: number) =>
  Array.from({ length: Math.floor(random() * (most + 1)) }, () => pick(chars)).join('');
const TEXT = [...'abcdefghijklmnopqrstuvwxyzXYZАБВжзк日本語 ,.;0123456789', '😀', 'é'];
/** Upper case where case folding brings it back ("ŞUNU YAZDI" folds to "şunu yazdi", not "yazdı"). */
const upper = (w: string) => (w.toUpperCase().toLowerCase() === w ? w.toUpperCase() : w);
const text = (n: number) => Array.from({ length: n }, () => pick(TEXT)).join('');

describe('mayEndAttribution looks at the end only', () => {
  it('is true for every verb of every language with whitespace and then a rule after it', () => {
    for (let i = 0; i < 3000; i++) {
      const verb = pick(VERBS);
      const decoration = run(SPACES, 3) + run(DASHES, 5);
      const line = `${text(Math.floor(random() * 300))} ${random() < 0.5 ? verb : upper(verb)}${decoration}`;
      expect(mayEndAttribution(line), JSON.stringify(line)).toBe(true);
    }
  });

  it('is false when the last character before the decoration ends no verb, and nothing else ends the line', () => {
    const letters = [...'bcghjkmpqrwxyzжзк日本語0123456789😀'].filter(
      (c) => !LAST.has(c) && !LAST.has(c.toLowerCase()),
    );
    expect(letters.length).toBeGreaterThan(5);
    for (let i = 0; i < 3000; i++) {
      // at most one decoration character, so that no rule ("--") ends the line
      const line = `${text(Math.floor(random() * 300)).replace(/@/g, '')}${pick(letters)}${random() < 0.5 ? pick(['-', ' ', '*']) : ''}`;
      expect(mayEndAttribution(line), JSON.stringify(line)).toBe(false);
    }
  });
});

describe('endsSentence', () => {
  const SENTENCE = /(?<![\p{L}\p{N}])([\p{L}\p{N}]+)[.!?…]$/u;
  it('finds what its pattern finds over the whole line', () => {
    for (let i = 0; i < 3000; i++) {
      const line = `${text(Math.floor(random() * 200))}${pick(['.', '!', '?', '…', '', 'a', ' '])}`;
      const m = SENTENCE.exec(line);
      const expected = !!m && m[1]!.length >= 3 && !/\d/.test(m[1]!) && !['jan', 'feb', 'mar'].includes(m[1]!);
      // date words aside (languages.ts's, e.g. "г."), the pattern's word decides
      if (m && /^[a-z]{3}$/.test(m[1]!)) continue;
      expect(endsSentence(line), JSON.stringify(line)).toBe(expected);
    }
  });
});
