// The language table compiled once into the tests the text rules ask of a line: is it an
// attribution, a header-block field, a separator, a device footer. No language appears here by
// name: every word comes from languages.ts. All tests are linear: lines are bounded in length
// before any pattern runs, and no pattern nests quantifiers over the same characters.
import { LANGUAGES } from './languages.js';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const unique = (words: Iterable<string>) => [...new Set(words)].sort((a, b) => b.length - a.length);
const collect = (pick: (l: (typeof LANGUAGES)[number]) => string[] | undefined) =>
  unique(LANGUAGES.flatMap((l) => pick(l) ?? []));
/** Words of cased scripts must stand alone; CJK, Arabic and other words may touch their neighbours. */
const word = (w: string) => {
  const e = escapeRegExp(w).replace(/ /g, '\\s+');
  const before = /^[\p{Lu}\p{Ll}]/u.test(w) ? '(?<![\\p{Lu}\\p{Ll}])' : '';
  const after = /[\p{Lu}\p{Ll}]$/u.test(w) ? '(?![\\p{Lu}\\p{Ll}])' : '';
  return `${before}${e}${after}`;
};
/**
 * No cased letter on both sides of a position. Before a word it says what word()'s lookbehind says
 * (a word that starts with a cased letter meets one in the text there, one that does not meets
 * none), after it what its lookahead says: one assertion on each side of the whole alternation
 * instead of one per word. That is the same pattern, matching the same words in the same order,
 * but V8 compiles it in milliseconds: with the classes repeated for each of ~70 words one pattern
 * took 285 ms to compile, on the first message that needed it (and again after V8 let it go).
 */
const EDGE = '(?!(?<=[\\p{Lu}\\p{Ll}])[\\p{Lu}\\p{Ll}])';
const CASED = { exact: /^[\p{Lu}\p{Ll}]$/u, folded: /^[\p{Lu}\p{Ll}]$/iu };
/** Whether a word's edges are cased letters alike with and without case folding (all of languages.ts's are). */
const edgesAgree = (w: string) =>
  [[...w][0]!, [...w].at(-1)!].every((ch) => CASED.exact.test(ch) === CASED.folded.test(ch));
const alternation = (words: string[]) =>
  words.every(edgesAgree)
    ? `${EDGE}(?:${words.map((w) => escapeRegExp(w).replace(/ /g, '\\s+')).join('|')})${EDGE}`
    : words.map(word).join('|');

/**
 * Characters a reader does not see: bidi marks and embeddings (Outlook and Arabic or Hebrew
 * clients put them around names and dates), zero-width space and joiners, word joiner, BOM, soft
 * hyphen. Lines are read without them; the text kept keeps them.
 */
export const INVISIBLE_CHARS = '\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff';
const INVISIBLE = new RegExp(`[${INVISIBLE_CHARS}]`, 'gu');
const ANY_INVISIBLE = new RegExp(`[${INVISIBLE_CHARS}]`, 'u');

/** The line as the tests read it: without invisible characters (the same string when it has none). */
export function visible(line: string): string {
  return ANY_INVISIBLE.test(line) ? line.replace(INVISIBLE, '') : line;
}

/** Where the `index`-th visible character of `line` is in `line` itself. */
export function rawIndex(line: string, index: number): number {
  if (!ANY_INVISIBLE.test(line)) return index;
  let seen = 0;
  for (let i = 0; i < line.length; i++) {
    if (seen === index) return i;
    if (!ANY_INVISIBLE.test(line[i]!)) seen++;
  }
  return line.length;
}

/** The longest line any test looks at: an attribution or a header line is short. */
export const MAX_MARKER_LENGTH = 400;

// ---------------------------------------------------------------------------------------------
// Evidence that a line is about a message: a date, a time, an address.

// Two-letter weekdays ("Mo", "ma", "to") are ordinary words too: only longer names count. Words of
// cased scripts are looked up word by word; CJK ones ("年", "午前") as substrings.
const DATE_WORD_LIST = collect((l) => l.dateWords);
const DATE_WORDS = new Set(
  DATE_WORD_LIST.filter((w) => w.length >= 3 && /^[\p{Lu}\p{Ll}]+$/u.test(w)).map((w) => w.toLowerCase()),
);
const DATE_SUBSTRINGS = DATE_WORD_LIST.filter((w) => !/[\p{Lu}\p{Ll}]/u.test(w));
const WORDS = /[\p{Lu}\p{Ll}]+/gu;

function hasDateWord(s: string): boolean {
  for (const m of s.matchAll(WORDS)) if (DATE_WORDS.has(m[0].toLowerCase())) return true;
  return DATE_SUBSTRINGS.some((w) => s.includes(w));
}
const NUMERIC_DATE = /\d{1,4}\s?[./-]\s?\d{1,2}\s?[./-]\s?\d{2,4}|(?<!\d)(?:19|20)\d{2}(?!\d)|\d{4}年|\d{1,2}月/u;
const TIME = /(?<!\d)\d{1,2}[:.]\d{2}(?!\d)/;
/** TIME with a colon only: "12.03" is as often a date as a time. */
const CLOCK_TIME = /(?<!\d)\d{1,2}:\d{2}(?!\d)/;
// One address token; '@' is outside every class so the match cannot backtrack far.
const ADDRESS = /[^\s<>()[\]"'@:;,]{1,64}@[^\s<>()[\]"'@:;,]{1,255}\.[^\s<>()[\]"'@:;,.]{2,63}/g;
/** The same token counted in code points, as one of several in a line (sentenceWords, isWriter). */
const ADDRESSES = new RegExp(ADDRESS.source, 'gu');
/** Characters that are in no address (whitespace aside): a run of the others ends at each "@". */
const NOT_IN_ADDRESS = ' \t\n\v\f\r<>()[]"\'@:;,';

/**
 * The first match of an address pattern in `s`, tried from where one can first start: the run of
 * address characters before the first "@" (64 code points at most, so 128 code units). Tried from
 * every position of the line, the pattern cost most of an attribution's tests.
 */
function firstAddress(pattern: RegExp, s: string): RegExpExecArray | null {
  const at = s.indexOf('@');
  if (at < 0) return null;
  let from = at;
  while (from > 0 && at - from < 128 && !NOT_IN_ADDRESS.includes(s[from - 1]!)) from--;
  pattern.lastIndex = from;
  return pattern.exec(s);
}
/** Every address of `s`, in order (what matchAll finds, without its copy of the pattern). */
function addresses(s: string): RegExpExecArray[] {
  const found: RegExpExecArray[] = [];
  for (let m = firstAddress(ADDRESSES, s); m; m = ADDRESSES.exec(s)) found.push(m);
  return found;
}

export function hasDate(s: string): boolean {
  return NUMERIC_DATE.test(s) || hasDateWord(s);
}
export function hasTime(s: string): boolean {
  return TIME.test(s);
}
/** "10:10", with a colon (CLOCK_TIME). */
export function hasClockTime(s: string): boolean {
  return CLOCK_TIME.test(s);
}
export function hasAddress(s: string): boolean {
  return firstAddress(ADDRESS, s) !== null;
}

// ---------------------------------------------------------------------------------------------
// Attribution lines: "On Fri, 14 Mar 2025 at 10:10, Ann <a@b> wrote:" in every language.

const WROTE = new RegExp(`(?:${alternation(collect((l) => l.wrote))})`, 'giu');
const OPENS_SOURCE = `(?:${alternation(collect((l) => l.opens))})(?=[\\s,])`;
// Case matters: "Am 27.10.2021 um 09:31 schrieb" opens, "10:10 AM" does not.
const OPENS = new RegExp(`^${OPENS_SOURCE}`, 'u');
const OPENS_AT = new RegExp(OPENS_SOURCE, 'uy');
/** A colon ends `s`, which has no whitespace at its end (`/[:：]\s*$/`, without a scan of the line). */
const endsWithColon = (s: string) => s.endsWith(':') || s.endsWith('：');
/** Dashes, underscores, equals signs around a line: "---- John wrote ----". */
const DECORATION = /^[-–—_=~*\s]{2,}|[-–—_=~*\s]{2,}$/g;
/** Gmail's old attribution: "2011/4/7 Ann <a@b>", a date first, an address last, nothing else. */
const DATE_THEN_ADDRESS = /^\d{4}[/.-]\d{1,2}[/.-]\d{1,2}\s.{1,200}(?:<[^<>\s]{1,255}>|@[^\s<>]{1,255})$/u;
/** How far from the end of a line its verb may start: the longest verb, "(a)", and MAX_AFTER_VERB. */
const VERB_WINDOW = 160;
/** How much may follow the verb: "schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr:", "kirjoitti 28/10/2021 12.46:". */
const MAX_AFTER_VERB = 90;

export type AttributionStrength = 'strong' | 'weak';

/**
 * Whether a line (a wrapped one joined) is an attribution. 'strong': it says who wrote when, and
 * whatever follows it is the original. 'weak': only evidence when quoted text follows it.
 */
export function attribution(line: string): AttributionStrength | null {
  const s = line.trim();
  if (s.length < 6 || s.length > MAX_MARKER_LENGTH || !mayEndAttribution(s)) return null;
  const known = ATTRIBUTIONS.get(s);
  if (known !== undefined) return known;
  const found = attributionOf(s);
  if (ATTRIBUTIONS.size >= MAX_ATTRIBUTIONS) ATTRIBUTIONS.clear();
  ATTRIBUTIONS.set(s, found);
  return found;
}

/**
 * attribution()'s answers for the lines of one message that passed its cheap tests: a message with
 * a text and an HTML part asks it of each attribution twice, and its tests of one line cost
 * microseconds. Cleared when full, and for each message (forgetAttributions, from extractReply),
 * so that what a message costs does not depend on the one before.
 */
const ATTRIBUTIONS = new Map<string, AttributionStrength | null>();
const MAX_ATTRIBUTIONS = 64;

export function forgetAttributions(): void {
  ATTRIBUTIONS.clear();
}

/** attribution() of a trimmed line that may end one. */
function attributionOf(line: string): AttributionStrength | null {
  let s = line;
  const stripped = s.replace(DECORATION, '');
  const decorated = stripped.length < s.length && /^[-–—_=~*]{2,}|[-–—_=~*]{2,}$/.test(s);
  s = stripped.trim();
  if (s.length < 6) return null;
  const colon = endsWithColon(s);
  if (!colon) return !decorated && DATE_THEN_ADDRESS.test(s) ? 'weak' : verbAttribution(s, false, decorated);
  return verbAttribution(s, true, decorated) ?? (verblessAttribution(s) ? 'strong' : quotingAttribution(s));
}

const QUOTING = new RegExp(`^(?:${alternation(collect((l) => l.quoting))})\\s+`, 'u');
/** Horde's "Quoting Ann Berg <a@b>:": the phrase, a name, the address in brackets and the colon, nothing else. */
function quotingAttribution(s: string): AttributionStrength | null {
  const m = QUOTING.exec(s);
  if (!m || !BRACKETED_ADDRESS_BEFORE_COLON.test(s)) return null;
  const name = s.slice(m[0].length).replace(BRACKETED_ADDRESS_BEFORE_COLON, '').trim();
  // a name of a few words, as before an address (nameLike); no date: the line says only who
  return name === '' || (nameLike(name) && !/[<>()[\]]/.test(name)) ? 'weak' : null;
}

/** A date or a time. */
const hasWhen = (s: string) => hasTime(s) || hasDate(s);

/** Every date word, two-letter weekdays too: at the start of a line they open a date ("вт, 4 мар."). */
const ANY_DATE_WORD = new Set(DATE_WORD_LIST.map((w) => w.toLowerCase()));
/** The words of the opening phrases, one by one ("Il giorno", "W dniu", "пользователь"). */
const OPEN_WORDS = new Set(collect((l) => l.opens).flatMap((w) => w.toLowerCase().split(/\s+/)));

/**
 * How many words of a cased script start with a small letter and are not a date word, an opening
 * word or a piece of an address: "the meeting is moved, details" has five, "Anna Berg", "am Fr.,
 * 28. Apr. 2017 um 11:53 Uhr" and "Il giorno … alle ore" none or two. A client writes a name and a
 * date around its verb; a person writes a sentence. Words under three letters ("в", "at", "de",
 * "um") are the connectors every client uses, and are not counted.
 */
function sentenceWords(s: string): number {
  const found = s.includes('@') ? addresses(s).map((m) => m[0].toLowerCase()) : [];
  let n = 0;
  for (const m of s.matchAll(WORDS)) {
    const w = m[0];
    if (w.length < 3 || !/^\p{Ll}/u.test(w)) continue;
    const lower = w.toLowerCase();
    if (DATE_WORDS.has(lower) || OPEN_WORDS.has(lower) || found.some((a) => a.includes(lower))) continue;
    n++;
  }
  return n;
}

const PRONOUNS = new Set(collect((l) => l.you).map((w) => w.toLowerCase()));
/** The word right before the verb is "you", "Вы", "du": the writer is the reader, not named. */
function byPronoun(before: string): boolean {
  const last = /([\p{Lu}\p{Ll}]+)[\s,]*$/u.exec(before)?.[1];
  return !!last && PRONOUNS.has(last.toLowerCase()) && !hasAddress(before);
}

/** The most sentence words an attribution may hold ("At 6/16/2016 08:32 PM, you wrote:", "a las"). */
const MAX_SENTENCE_WORDS = 2;

/**
 * A name as clients write it before an address or a verb: a few words, no date, no sentence.
 * `small`: how many sentence words it may hold ("codinghorror via Discourse Meta <…>").
 */
function nameLike(s: string, small = 0): boolean {
  const t = s.trim().replace(/[<([\s]+$/, '');
  const words = t.split(/\s+/).filter(Boolean);
  return words.length > 0 && words.length <= 6 && !hasWhen(t) && sentenceWords(t) <= small && !endsSentence(t);
}

/**
 * Where a client's attribution starts: an opening word ("On", "Am", "Le"), the date ("вт, 4 мар.",
 * "27.01.2012", "2016年"), or the name and address of the writer ("Ann Berg <a@b> schrieb am …",
 * "\"John Doe\" <a@b>, 28/10/2021 … yazdı:"). A line that starts otherwise ("Yesterday Ann <a@b>
 * wrote:", "the meeting on 14.03 …") is a sentence of the person's.
 */
function startsLikeAttribution(s: string): boolean {
  if (OPENS.test(s) || /^[\p{N}(（]/u.test(s)) return true;
  const first = /^[\p{Lu}\p{Ll}]+/u.exec(s)?.[0];
  if (first && ANY_DATE_WORD.has(first.toLowerCase())) return true;
  if (DATE_SUBSTRINGS.some((w) => s.startsWith(w))) return true;
  // "Ann Berg <a@b> wrote:": a display name before "<a@b>" may hold small words ("Very long author
  // name <…>", "codinghorror via Discourse Meta <…>"); before a bare address, none
  const address = firstAddress(ADDRESS, s);
  if (!address) return false;
  const name = s.slice(0, address.index).replace(/mailto:$/i, '');
  return /^[\s<([]*$/.test(name) || nameLike(name, /[<([]\s*$/.test(name) ? MAX_SENTENCE_WORDS : 0);
}

/**
 * "… <a@b>:", "… (a@b):", "… [mailto:a@b]:": an address in brackets right before the closing
 * colon. A bare one ("write to ann@example.com:") is how people write, not how clients do. Outlook
 * writes a link of HTML it turns into text as "text<href>": "<a@b<mailto:a@b>>:".
 */
const BRACKETED_ADDRESS_BEFORE_COLON =
  /(?:<[^<>\s@]{0,255}@[^<>\s]{1,255}(?:<mailto:[^<>\s]{1,255}>)?>|\([^()\s@]{0,255}@[^()\s]{1,255}\)|\[[^[\]\s@]{0,255}@[^[\]\s]{1,255}\])\s*[:：]\s*$/u;

/** "2017-02-05 13:29 GMT+02:00 Very long author name <…>:", "… 3:32 PM +0300 from a@b <a@b>:". */
const MAX_VERBLESS_SENTENCE_WORDS = 3;

/** Gmail ru, Mail.ru, Yandex: "вт, 4 мар. 2025 г. в 10:10, Анна Берг <anna@example.com>:", no verb. */
function verblessAttribution(s: string): boolean {
  if (!s.includes('@') || !hasTime(s) || !hasDate(s) || !startsLikeAttribution(s)) return false;
  if (BRACKETED_ADDRESS_BEFORE_COLON.test(s)) return sentenceWords(s) <= MAX_VERBLESS_SENTENCE_WORDS;
  // a bare address is a client's only after its "from", with a date and a time alone before it
  const head = byBareAddress(s);
  return head !== null && sentenceWords(head) === 0;
}

/** The words before "от"/"by" (languages.ts `by`) and a bare address that end `s` ("… 10:10 от a@b:"). */
const BY_AT_END = new RegExp(`[\\s,](?:${alternation(collect((l) => l.by))})\\s+$`, 'iu');
function byBareAddress(s: string): string | null {
  const last = addresses(s).at(-1);
  if (!last || !/^\s*[:：]\s*$/.test(s.slice(last.index + last[0].length))) return null;
  // the address starts the token: "от" and whitespace right before it, nothing glued to it
  const before = s.slice(0, last.index);
  // a space for a line that starts with the word; only so much of the end that the pattern tries
  const by = BY_AT_END.exec(before.length > MAX_BY_LENGTH ? before.slice(-MAX_BY_LENGTH) : ` ${before}`);
  return by ? before.slice(0, Math.max(0, before.length - by[0].length)) : null;
}
/** Longer than every `by` word with its whitespace around it. */
const MAX_BY_LENGTH = 24;

/**
 * The attributions that name the verb: "… wrote:", "… schrieb am …:", "---- Ann wrote ----". Apart
 * from a decorated one, each is a client's shape: it starts as clients start one, holds a date or
 * an address, and is no sentence (sentenceWords).
 */
function verbAttribution(s: string, colon: boolean, decorated: boolean): AttributionStrength | null {
  let verbStart = -1;
  let verbEnd = -1;
  // Only a verb near the end can be the attribution's (MAX_AFTER_VERB): the search starts there,
  // and the one global pattern is run with exec, not cloned by matchAll for every line.
  WROTE.lastIndex = Math.max(0, s.length - VERB_WINDOW);
  for (let m = WROTE.exec(s); m; m = WROTE.exec(s)) {
    verbStart = m.index;
    verbEnd = m.index + m[0].length;
  }
  if (verbEnd < 0) return null;
  const before = s.slice(0, verbStart);
  const after = s.slice(verbEnd).replace(/^\s*\([^()]{0,8}\)/, '');
  const atEnd = /^\s*[:：]?\s*$/.test(after);
  if (atEnd && decorated) return 'strong';
  // The Bat!'s "Вы писали 4 марта 2025 г., 10:10:", "You wrote on 4 March 2025:": one word before
  // the verb and the date after it name no writer, so the line counts only above a quote
  if (!atEnd && colon && after.length <= MAX_AFTER_VERB && /^\s*[\p{L}]+\s*$/u.test(before))
    return hasWhen(after) && sentenceWords(after) <= 1 ? 'weak' : null;
  if (!startsLikeAttribution(s) || sentenceWords(before) + sentenceWords(after) > MAX_SENTENCE_WORDS) return null;
  const evidence = hasAddress(s) || hasWhen(s);
  const opens = OPENS.test(s);
  // "04.03.2025 в 10:10 Вы писали:": a pronoun names no writer, and without an opening word ("On
  // Nov 26, 2013 you wrote:", "At …, you wrote:") the line counts above a quote only
  if (atEnd) return evidence && (colon || opens) ? (!opens && byPronoun(before) ? 'weak' : 'strong') : null;
  if (!colon || after.length > MAX_AFTER_VERB) return null;
  // the date after the verb, the writer before it: German, Finnish, Hungarian, Arabic clients
  if (hasWhen(after) && sentenceWords(after) <= 1 && hasAddress(before)) return 'strong';
  // the date before the verb, the writer after it: "Am 04.03.2025 um 10:10 schrieb Anna Berg:"
  // ("… skrev \"John Doe\" <a@b> följande:"); an address outside brackets is a sentence's
  const writer = after
    .replace(/[:：]\s*$/, '')
    .replace(/<[^<>\s@]{0,255}@[^<>\s]{1,255}>/, ' ')
    .trim();
  const named = writer === '' || (!writer.includes('@') && writer.split(/\s+/).length <= 5 && nameLike(writer, 1));
  return hasWhen(before) && named ? 'strong' : null;
}

/** A character class of these characters, each escaped. */
const classOf = (chars: string[]) =>
  `[${unique(chars)
    .map((c) => c.replace(/[\]\\^-]/g, '\\$&'))
    .join('')}]`;
const WROTE_AT_END = new RegExp(`(?:${alternation(collect((l) => l.wrote))})\\s*[-–—_=~*]*$`, 'iu');
/**
 * The last character of every verb, compiled with the same flags: a line whose end (before any
 * decoration) is none of them cannot end with a verb, and the alternation of all verbs, tried at
 * every position, is not run on it (most lines of every message).
 */
const WROTE_LAST = new RegExp(`${classOf(collect((l) => l.wrote).map((w) => [...w].at(-1)!))}[-–—_=~*\\s]*$`, 'iu');

/** The characters of a rule after an attribution ("wrote: ----"), whitespace aside. */
const RULE_CHARS = '-–—_=~*';

/** Where the run of decoration at the end of `s` begins ("wrote: --" → the index of " --"). */
function decorationStart(s: string): number {
  let end = s.length;
  while (end > 0 && mayDecorate(s[end - 1]!) && DECORATION_CHAR.test(s[end - 1]!)) end--;
  return end;
}
/** Printable ASCII but the rule's characters is no decoration: the pattern is not asked (of most line ends). */
function mayDecorate(ch: string): boolean {
  const c = ch.charCodeAt(0);
  return c <= 0x20 || c >= 0x7f || RULE_CHARS.includes(ch);
}
/** The characters WROTE_LAST allows after the verb (none of them outside the BMP). */
const DECORATION_CHAR = /^[-–—_=~*\s]$/u;

/**
 * A colon, a bracket, two rule characters (`/[:：>]$|[-–—_=~*]{2}$/`) or an address (`/@\S+$/`: an
 * "@" with no whitespace after it up to the end) at the end of `s`, which has no whitespace there.
 * Read from the end: the patterns, anchored at the end only, were tried from every position.
 */
function endsWithMark(s: string): boolean {
  const last = s.at(-1);
  if (last === ':' || last === '：' || last === '>') return true;
  if (s.length >= 2 && RULE_CHARS.includes(last!) && RULE_CHARS.includes(s.at(-2)!)) return true;
  const at = s.length >= 2 && s.includes('@') ? s.lastIndexOf('@', s.length - 2) : -1;
  return at >= 0 && !/\s/.test(s.slice(at + 1));
}

/**
 * Whether the last character before the decoration ends a verb. An end-anchored pattern is tried
 * from every position of the text: WROTE_LAST is given only that character (two code units, for a
 * pair), where alone it can match.
 */
function endsWithVerbLetter(s: string): boolean {
  const end = decorationStart(s);
  return WROTE_LAST.test(s.slice(Math.max(0, end - 2)));
}

/** Cheap tests first: an attribution ends with a colon, a decoration, an address or its verb. */
export function mayEndAttribution(line: string): boolean {
  const s = line.trimEnd();
  return endsWithMark(s) || (endsWithVerbLetter(s) && WROTE_AT_END.test(s.slice(-40)));
}

/**
 * Whether an attribution wrapped onto `line` (trimmed, not blank) may end on it: false only when
 * mayEndAttribution is false for the line and for the line joined after any other with a space,
 * neither holding "<" or ">" (unwrapping at a bracket joins two words). The end it looks at is the
 * line's own, unless the line is all decoration, whose run may reach into the line before; the verb
 * may too ("a" / "écrit"), and is not looked for.
 */
export function mayEndWrapped(line: string): boolean {
  return decorationStart(line) === 0 || endsWithMark(line) || endsWithVerbLetter(line);
}

/**
 * Where an attribution starts inside a line that holds the person's text before it ("reply On
 * Wed, … wrote:"): the first opening word whose tail is an attribution, when what comes before
 * it is a sentence or holds no date (then it is not the attribution's own beginning).
 */
export function attributionTail(line: string): number {
  const s = line.trimEnd();
  if (s.length > MAX_MARKER_LENGTH || !endsWithColon(s)) return -1;
  for (let i = 1; i < s.length - 6; i++) {
    const before = s[i - 1]!;
    if (before !== ' ' && before !== '-' && before !== '\t') continue;
    OPENS_AT.lastIndex = i;
    if (!OPENS_AT.test(s) || attribution(s.slice(i)) !== 'strong') continue;
    const head = s.slice(0, i).replace(/[-–—\s]+$/, '');
    if (!(hasDate(head) || hasTime(head)) || endsSentence(head)) return i;
  }
  return -1;
}

const SENTENCE_END = new Set(['.', '!', '?', '…']);

/** "… the fix." ends a sentence; "… 2014 г." and "Fr., 28." end a date. */
export function endsSentence(s: string): boolean {
  // The word starts where no letter or digit is before it: without the lookbehind the pattern is
  // tried from every letter of a long word to its end (quadratic in the line's length).
  if (!SENTENCE_END.has(s.at(-1) ?? '')) return false; // what the pattern ends with, without a scan of the line
  const m = /(?<![\p{L}\p{N}])([\p{L}\p{N}]+)[.!?…]$/u.exec(s);
  return !!m && m[1]!.length >= 3 && !/\d/.test(m[1]!) && !DATE_WORDS.has(m[1]!.toLowerCase());
}

/** Where an attribution may start when wrapped over several lines: it opens, or it starts with a date or a name. */
export function mayOpenAttribution(line: string): boolean {
  const s = line.trim().replace(/^[-–—_=~*\s]+/, '');
  return s.length > 0 && s.length <= MAX_MARKER_LENGTH && !endsSentence(s);
}

/**
 * `s` ends with an address and a comma that goes on to the date, and at most the date's start:
 * "Ann <a@b>,", "Ann <a@b>, 4 Mar". "Ann Berg, ACME <a@b>" under a signature is a whole line.
 */
function endsWithWriter(s: string): boolean {
  const last = addresses(s).at(-1);
  if (!last) return false;
  const after = s.slice(last.index + last[0].length);
  if (!/^[>)\]]?\s*,/.test(after)) return false;
  for (const m of after.matchAll(WORDS)) if (!ANY_DATE_WORD.has(m[0].toLowerCase())) return false;
  return true;
}

/**
 * The narrowest width a client wraps plain text at: RFC 3676 recommends 66 (Thunderbird wraps at 72,
 * Outlook at 76, Gmail at 78). A line shorter than that with the next word was not wrapped there.
 */
const MIN_WRAP_WIDTH = 66;

/**
 * Whether `head`, the lines right above `tail`, an attribution of its own, begin that attribution as
 * its client wrapped it rather than being the person's line over it. The line above (`above`, the
 * head's last) was full: with the tail's first word it would pass MIN_WRAP_WIDTH (or it is Claws
 * Mail's line of the opening and the date, below). And the halves
 * are one attribution's: the date in the head, the writer in the tail ("Il giorno mar 4 mar 2025
 * alle ore 10:10 Anna-Maria" / "Konstantinopolskaya <a@b> ha scritto:"), or the writer's address in
 * the head and the date in the tail, which names no writer ("Mehmet Ali Yılmazoğlu <a@b>," / "4 Mar
 * 2025 Sal, 10:10 tarihinde şunu yazdı:").
 */
export function continuesAttribution(head: string, above: string, tail: string): boolean {
  const h = head.trim();
  if (h.length > MAX_MARKER_LENGTH || endsWithColon(h) || endsSentence(h) || sentenceWords(h) > MAX_SENTENCE_WORDS)
    return false;
  // Claws Mail's template puts the opening and the date on a line of their own: "On Tue, 4 Mar
  // 2025 10:10:10 +0300" / "Ann <a@b> wrote:", a full date with its year ("On Monday at 10:10" is
  // the person's)
  const dateLine = h === above.trim() && OPENS.test(h) && NUMERIC_DATE.test(h) && hasTime(h) && sentenceWords(h) === 0;
  const first = /^\S{1,80}/.exec(tail)?.[0] ?? '';
  if (!dateLine && [...above.trim()].length + 1 + [...first].length <= MIN_WRAP_WIDTH) return false;
  if (hasAddress(h))
    return endsWithWriter(h) && !hasAddress(tail) && !OPENS.test(tail) && attribution(tail) === 'strong';
  return startsLikeAttribution(h) && hasWhen(h) && !hasWhen(tail);
}

// ---------------------------------------------------------------------------------------------
// Header blocks: From:/Sent:/To:/Subject: and their translations.

export type Field = 'from' | 'date' | 'to' | 'cc' | 'subject';
const FIELDS: Field[] = ['from', 'date', 'to', 'cc', 'subject'];
const FIELD_NAMES = new Map<string, Field>();
for (const field of FIELDS)
  for (const name of collect((l) => l[field]))
    if (!FIELD_NAMES.has(name.toLowerCase())) FIELD_NAMES.set(name.toLowerCase(), field);
const FIELD_LINE = new RegExp(
  `^\\s*[*_]{0,2}(${alternation(unique(FIELD_NAMES.keys()))})[*_]{0,2}\\s*[:：][*_]{0,2}(.*)$`,
  'iu',
);

/** 'from', 'date'… when the line is "Name: value" with a field name of some language. */
export function headerField(line: string): { field: Field; value: string } | null {
  if (line.length > MAX_MARKER_LENGTH * 4) return null;
  // a field name is short: its colon comes early
  const colon = line.slice(0, 40).search(/[:：]/);
  if (colon < 0) return null;
  // and what stands before it, FIELD_LINE's decoration aside, is a name: looked up before FIELD_LINE
  // is run, whose alternation of every language's names cost 2-4 µs on each line ending with a colon
  // (15,000 such lines of a base64 body held the main thread 127 ms: attack run 5)
  const name = line.slice(0, colon).replace(LEADING_DECORATION, '').replace(TRAILING_DECORATION, '');
  if (!FIELD_NAMES.has(fieldKey(name))) return null;
  const m = FIELD_LINE.exec(line);
  if (!m) return null;
  const field = FIELD_NAMES.get(fieldKey(m[1]!));
  return field ? { field, value: m[2]!.trim() } : null;
}

/** What FIELD_LINE allows around a name before its colon. */
const LEADING_DECORATION = /^\s*[*_]{0,2}/;
const TRAILING_DECORATION = /[*_]{0,2}\s*$/;
/** A field name as FIELD_NAMES holds it: lower case, one space between its words. */
const fieldKey = (name: string): string => name.toLowerCase().replace(/\s+/g, ' ');

/**
 * A header block's From value as clients write it: an address, or a name ("Anna Berg", "FlameCRM",
 * "\"ООО Ромашка\""). "the accounting team" or "me" is a person's own list of who and what.
 */
export function isWriter(value: string): boolean {
  const v = value.trim();
  // a name and an address or two are short; the address pattern is not run over a long value
  if (v.length > MAX_MARKER_LENGTH) return false;
  if (!v.includes('@')) return /^["'«(]*[^\p{Ll}\s]/u.test(v) && nameLike(v, 1);
  // the addresses end the value ("Ann <a@b>", "bob@b [mailto:" wrapped, "… on behalf of c@d"):
  // "Ann <ann@example.com> — she is our new admin" is a sentence about Ann
  const found = addresses(v);
  if (!found.length) return false;
  const first = found[0]!;
  const last = found.at(-1)!;
  const after = v.slice(last.index + last[0].length).replace(/mailto/gi, '');
  const before = v.slice(0, first.index);
  return !/[\p{Lu}\p{Ll}]/u.test(after) && !hasWhen(before) && sentenceWords(before) <= 3;
}

/** Yahoo's one-line form: "From: Ann <a@b>To: Bob <c@d>Sent: …Subject: …" split back into fields. */
const INLINE_FIELD = new RegExp(`(${unique(FIELD_NAMES.keys()).map(escapeRegExp).join('|')})\\s*[:：]`, 'giu');
export function inlineFields(text: string): Array<{ field: Field; value: string }> {
  const found: Array<{ field: Field; at: number; end: number }> = [];
  for (const m of text.slice(0, MAX_MARKER_LENGTH * 4).matchAll(INLINE_FIELD)) {
    const field = FIELD_NAMES.get(m[1]!.toLowerCase());
    // a field name is glued to the previous value, or starts the text, or follows a blank
    if (field && (m.index === 0 || !/[\p{Lu}\p{Ll}]/u.test(text[m.index - 1]!) || /[>\d]/.test(text[m.index - 1]!)))
      found.push({ field, at: m.index, end: m.index + m[0].length });
  }
  return found.map((f, k) => ({ field: f.field, value: text.slice(f.end, found[k + 1]?.at ?? text.length).trim() }));
}

// ---------------------------------------------------------------------------------------------
// Separators: "-----Original Message-----", "---------- Forwarded message ---------".

const ORIGINAL = alternation(collect((l) => l.original));
const FORWARDED = alternation(collect((l) => l.forwarded));
const SEPARATOR = new RegExp(
  `^[\\s>]*([-–—_=*~]{2,})?\\s*(?:(${FORWARDED})|(${ORIGINAL}))\\s*([-–—_=*~]{2,})?\\s*([:：])?(.*)$`,
  'iu',
);
/** What SEPARATOR allows before the phrase: whitespace, quote markers, a rule. */
const SEPARATOR_LEAD = /^[\s>\-–—_=*~]*/;
const PHRASES = [...collect((l) => l.forwarded), ...collect((l) => l.original)];
/**
 * The first word of every phrase, with SEPARATOR's flags, tried where the lead ends: no phrase
 * starts with a character of the lead, so a separator's phrase starts there. Most lines with a
 * colon are no separator, and SEPARATOR, compiled with case folding, is slow to be tried on them.
 * (null, and SEPARATOR asked of every line, if a phrase did start so.)
 */
const SEPARATOR_HEAD = PHRASES.some((p) => SEPARATOR_LEAD.exec(p)![0] !== '')
  ? null
  : new RegExp(
      `(?:${unique(PHRASES.map((p) => p.split(' ')[0]!))
        .map(escapeRegExp)
        .join('|')})`,
      'iuy',
    );

/** A separator line: which kind, and what follows it on the same line (Yahoo puts the fields there). */
export function separator(line: string): { kind: 'forwarded' | 'original'; rest: string; decorated: boolean } | null {
  if (line.length > MAX_MARKER_LENGTH * 4 || !/[-–—_=*~]{2}|[:：]/.test(line)) return null;
  if (SEPARATOR_HEAD) {
    SEPARATOR_HEAD.lastIndex = SEPARATOR_LEAD.exec(line)![0].length;
    if (!SEPARATOR_HEAD.test(line)) return null;
  }
  const m = SEPARATOR.exec(line);
  if (!m) return null;
  const decorated = !!(m[1] || m[4]);
  const rest = m[6]!.trim();
  // "Forwarded message" in a sentence is text: a separator is decorated, or ends with a colon
  if (!decorated && !(m[5] && rest === '')) return null;
  if (rest && !inlineFields(rest).length) {
    // Thunderbird's translations that keep the English: "-------- Preposlaná správa --- Forwarded
    // Message --------" is one separator, said twice
    const again = decorated ? separator(rest) : null;
    return again?.decorated && !again.rest ? { kind: m[2] ? 'forwarded' : 'original', rest: '', decorated } : null;
  }
  return { kind: m[2] ? 'forwarded' : 'original', rest, decorated };
}

const FORWARD_SUBJECT = new RegExp(
  `^\\s*(?:\\[[^\\]]{0,40}\\]\\s*)?(?:${alternation(collect((l) => l.forwardPrefixes))})\\s*[:：]`,
  'iu',
);

/** "Fwd: …", "WG: …", "Пересл: …": the subject of a forwarded message. */
export function isForwardSubject(subject: string | null | undefined): boolean {
  return !!subject && FORWARD_SUBJECT.test(subject.slice(0, 200));
}

/** A rule Outlook or a web client draws above the original: underscores, dashes, equals signs. */
export const RULE = /^\s*(?:_{4,}|-{4,}|={4,}|—{4,})\s*$/;
/** A label between two rules, in a language the table may not know: "-------- Message --------". */
const RULED_LABEL_START = /^\s*[-–—_=*~]{4,}\s*[^-–—_=*~\s]/;
const RULED_LABEL_END = /[-–—_=*~]{4,}\s*$/;

/** A rule, or a short label between two rules: what a client draws above the original's header lines. */
export function isRuled(line: string): boolean {
  return RULE.test(line) || (line.length <= 120 && RULED_LABEL_START.test(line) && RULED_LABEL_END.test(line));
}

// ---------------------------------------------------------------------------------------------
// Device and app footers.

const FOOTER_WORDS = '[^\\s,;:!?]{1,40}(?:[ \\u00a0][^\\s,;:!?]{1,40}){0,3}';
const FOOTER_LIST = collect((l) => l.footers);
/**
 * What a footer line must start with (the first letter of a footer that starts with a word), or end
 * with (a footer that starts with a name, "… cihazımdan gönderildi"): one character class and a few
 * words, with the flags of FOOTERS, tried before all 100-odd footers are (on most lines, in vain).
 */
const FOOTER_FIRST = new RegExp(
  `^${classOf(FOOTER_LIST.filter((f) => !f.startsWith('…')).map((f) => [...f][0]!))}`,
  'iu',
);
/**
 * The first word of a footer that starts with one ("Sent", "Отправлено", "iPhone-ról"), with the
 * flags of FOOTERS: most lines pass FOOTER_FIRST (a capital is where sentences start), and FOOTERS
 * compiled with case folding is slow to be tried even at the start alone.
 */
const FOOTER_HEAD = new RegExp(
  `^(?:${unique(FOOTER_LIST.filter((f) => !f.startsWith('…')).map((f) => f.split(/[ …]/)[0]!))
    .map(escapeRegExp)
    .join('|')})`,
  'iu',
);
const FOOTER_TAIL = new RegExp(
  `(?:${FOOTER_LIST.filter((f) => f.startsWith('…'))
    .map((f) => escapeRegExp(f.split('…').at(-1)!).replace(/ /g, '\\s+'))
    .join('|')})[.!]?$`,
  'iu',
);
const FOOTERS = new RegExp(
  `^(?:${FOOTER_LIST.map((f) => {
    const parts = f.split('…').map((p) => escapeRegExp(p).replace(/ /g, '\\s+'));
    return parts.length > 1 ? parts.join(FOOTER_WORDS) : `${parts[0]}(?:\\s+[^\\s,;:!?]{1,40}){0,6}`;
  }).join('|')})(?:[.!]?\\s+(?:${collect((l) => l.excuses)
    .map((e) => escapeRegExp(e).replace(/ /g, '\\s+'))
    .join('|')}))?[.!]?$`,
  'iu',
);
/** Links a client appends to its footer: "<https://aka.ms/…>", "(http://…)", "[text](url)". */
const FOOTER_LINK =
  /\s*(?:<https?:[^<>\s]{0,300}>|\(https?:[^()\s]{0,300}\)|\[([^[\]]{0,80})\]\(https?:[^()\s]{0,300}\))/giu;

/** What may stand around a footer, whitespace aside ("— Sent from my iPhone", "(Sent from …)"). */
const FOOTER_OPENERS = '-–—_*(<[';
const FOOTER_CLOSERS = '-–—_*)>]';

/** The whole line is a device or app footer ("Sent from my iPhone", "Отправлено из Почты Mail.ru"). */
export function isFooter(line: string): boolean {
  if (line.length > 400) return false;
  // every link of a footer is http(s): a line without one has none to take out
  let s = (
    /http/i.test(line) ? line.replace(FOOTER_LINK, (_all, text: string | undefined) => (text ? ` ${text}` : '')) : line
  ).trim();
  // the pattern, anchored at the end, is tried from every position: only for a line that ends so
  if (FOOTER_OPENERS.includes(s.charAt(0)) || FOOTER_CLOSERS.includes(s.charAt(s.length - 1)))
    s = s.replace(/^[-–—_*\s(<[]+|[-–—_*\s)>\]]+$/g, '').trim();
  if (s.length < 4 || s.length > 120) return false;
  return ((FOOTER_FIRST.test(s) && FOOTER_HEAD.test(s)) || FOOTER_TAIL.test(s)) && FOOTERS.test(s);
}

/** A mailing-list footer: "riak-users mailing list", a listinfo or unsubscribe link. */
export const LIST_FOOTER = /mailing list|\/listinfo\/|\/mailman\/|list-unsubscribe/i;
