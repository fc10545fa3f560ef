// The text rules: from the lines of a body (plain text, or HTML laid out by html.ts with its
// quotes marked) to the answer, what was cut, and a forwarded message. Cutting needs evidence —
// a quote marker, an attribution or header block introducing the original, a separator, a
// signature delimiter or a device footer at the end — and an answer is never lost to it.
import type { Line } from '../html/text.js';
import { type Forwarded, readForwarded } from './forward.js';
import {
  type AttributionStrength,
  attribution,
  attributionTail,
  continuesAttribution,
  type Field,
  hasAddress,
  hasClockTime,
  hasDate,
  hasTime,
  headerField,
  isFooter,
  isRuled,
  isWriter,
  LIST_FOOTER,
  MAX_MARKER_LENGTH,
  mayEndWrapped,
  mayOpenAttribution,
  RULE,
  rawIndex,
  separator,
  visible,
} from './patterns.js';

export interface Split {
  reply: string;
  removed: string;
  forwarded: Forwarded | null;
}

/**
 * Whether a line can be where an attribution begins: the second half of a wrapped one starts
 * inside the address ("<a@b> kirjoitti:", "a@b> wrote:", "mailto:…", ">:"), never with a name.
 */
const startsAttribution = (line: string) => {
  const t = line.trim();
  // the address alternative scans up to 64 characters: only worth it when there is an "@"
  return !/^(?:[<>([]|mailto:)/i.test(t) && !(t.includes('@') && /^[^\s<>()[\]"'@]{1,64}@/.test(t));
};
/**
 * An address opened and not closed: more "<" than ">" ("Ann <", and "Ann < mailto:Ann <a@b>", where
 * a client wrote the link's text and its target both).
 */
const unclosedAddress = (joined: string) => {
  let depth = 0;
  for (const ch of joined)
    if (ch === '<') depth++;
    else if (ch === '>' && depth > 0) depth--;
  return depth > 0;
};
/**
 * A blank line inside an attribution: only before the line that opens its address ("On … Ann\n\n<\n
 * mailto:Ann <a@b>\n> wrote:", as a client renders a link of its HTML as text).
 */
const opensAddress = (line: string) => line.trim() === '<';

/** "Ann <" / "a@b> wrote:" and "<" / "mailto:Ann <a@b>" / ">" are one address once joined. */
const unwrap = (joined: string) => {
  // most lines hold neither bracket: no new strings for them
  const opened = joined.includes('<') ? joined.replace(/<\s+/g, '<') : joined;
  return opened.includes('>') ? opened.replace(/(?<!\s)\s+>/g, '>') : opened;
};

export function textLines(text: string): Line[] {
  const body = text.replace(/^\ufeff/, '');
  // a string is split faster than a pattern: most text has no CR
  return (body.includes('\r') ? body.split(/\r\n|\r|\n/) : body.split('\n')).map((line) => ({
    text: line,
    origin: 'own',
  }));
}

const QUOTE_PREFIX = /^[ \t]*>/;
/**
 * The Bat!'s quote prefix: the writer's initials before ">" and a space (" IP> text", "ИП> text",
 * "IP>> text"). A capital and a ">" start ordinary lines too ("A> B holds"), so it counts only for
 * initials that prefix two lines of the message or more (initialsQuoting).
 */
const INITIALS_PREFIX = /^[ \t]?(\p{Lu}[\p{Lu}\p{Ll}]{0,2})>(?=[ \t>]|$)/u;
/** Lines that carry one initials prefix before it is taken for The Bat!'s quoting. */
const MIN_INITIALS_LINES = 2;

/** The initials that prefix at least MIN_INITIALS_LINES lines. */
function initialsQuoting(lines: Line[]): Set<string> {
  const counts = new Map<string, number>();
  for (const l of lines) {
    // the prefix's ">" comes after at most a blank and three letters (two code units each)
    const gt = l.text.indexOf('>');
    const m = gt > 0 && gt < 8 ? INITIALS_PREFIX.exec(l.text) : null;
    if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  }
  return new Set([...counts].filter(([, c]) => c >= MIN_INITIALS_LINES).map(([k]) => k));
}
/** ">>> >>> http://example.com <<<" is decoration around a link, not a quote. */
const ARROWS = /^[ \t]*>[>\s]*[^<>\s][^<>]*<{2,}\s*$/;
/** A line of a quote in the style of old web mail and Discourse: "| text". */
const BAR_PREFIX = /^[ \t]*\|/;
/** The most of a link a client carries over to a line of its own. */
const MAX_WRAPPED_LINK = 200;
/** The line's last word is a link ("(http://host/path", "<https://…"), which may go on below it. */
const endsInLink = (line: string) => /(?:^|\s)[(<[]?(?:https?:\/\/|www\.)\S*$/i.test(line.slice(-MAX_WRAPPED_LINK));
/**
 * A line that can be the rest of a link: no whitespace, and a character of a path or query in it
 * ("_nonce=3dd518)", "id=5&key=2"). "Done." or "OK" answering the quote above is not.
 */
const linkRest = (line: string) => !/\s/.test(line) && /[/=&?%#_~]/.test(line);
const SIGNATURE_DELIMITER = /^--\s*$/;
/** A signature is short; a longer tail after "--" is more likely text the person meant to send. */
const MAX_SIGNATURE_LINES = 12;
/** An attribution may be wrapped by its client over this many lines, at the address or anywhere. */
const MAX_ATTRIBUTION_LINES = 5;
const MAX_LIST_FOOTER_LINES = 6;
/**
 * "ᐧ" (U+1427) alone on a line: the text of the tracking image that Gmail add-ons (Streak and
 * others) put under the answer. The person typed none of it.
 */
const TRACKER_MARK = /^\s*\u1427\s*$/u;
/** How far a header block's fields may reach: five fields, wrapped values, blank lines between paragraphs. */
const MAX_HEADER_BLOCK_LINES = 12;
/** Header lines in a row (From, Date, Subject, To) that make a block under a rule. */
const MIN_RUN_FIELDS = 2;

type Cut = 'forwarded' | 'original' | 'header' | 'attribution' | 'footer';

/** forwardSubject: the message's subject says it is a forward ("Fwd: …"). */
export function splitReply(source: Line[], options: { forwardSubject?: boolean } = {}): Split {
  // `kept` is what the person sent, invisible characters included; `lines` is what the rules read
  const { kept, lines } = splitInlineAttributions(source);
  const n = lines.length;
  const removed = new Array<boolean>(n).fill(false);
  const at = (i: number): Line => lines[i]!;
  // The rules ask the same of a line many times (an attribution may end on each of the lines below
  // where it starts): what only the line decides is worked out once, trimmed text first.
  const trimmed = lines.map((l) => l.text.trim());
  const blank = (i: number): boolean => trimmed[i] === '';
  const initials = initialsQuoting(lines);
  const initialsOf = (t: string) => (initials.size ? INITIALS_PREFIX.exec(t)?.[1] : undefined);
  const quoted = once(
    n,
    (i) =>
      at(i).origin === 'quote' ||
      // ARROWS ends with "<<": a line without one is not asked
      (QUOTE_PREFIX.test(at(i).text) && !(at(i).text.includes('<<') && ARROWS.test(at(i).text))) ||
      initials.has(initialsOf(at(i).text) ?? ''),
  );
  const bracket = once(n, (i) => trimmed[i]!.includes('<') || trimmed[i]!.includes('>'));
  /** The line's header field: read by the blocks and runs looked for from each of the lines above it. */
  const fieldAt = memo(n, (i) => headerField(at(i).text));
  const mayEnd = once(n, (i) => mayEndWrapped(trimmed[i]!));
  /** "Text.\nOn … wrote:" is a sentence followed by an attribution, not one wrapped line. */
  const attributionOfItsOwn = once(
    n,
    (i) => mayEnd(i) && startsAttribution(trimmed[i]!) && attribution(trimmed[i]!) !== null,
  );
  /** A quoted line without its markers, ">" or initials. */
  const unquote = (t: string): string => {
    const m = initialsOf(t);
    return (m && initials.has(m) ? t.trimStart().slice(m.length) : t).replace(/^[>\s]+/, '');
  };
  const nextNonBlank = (from: number): number => {
    for (let j = from; j < n; j++) if (!blank(j)) return j;
    return -1;
  };
  let ownAbove = false;
  let quoteIntroduced = false;
  /**
   * A quote line its client wrapped without a new ">", between two quote lines: lower case after a
   * long line, or the rest of a link the line above ends in ("> View (http://host/a" /
   * "_b=1)": no whitespace, as no answer is).
   */
  const wrappedQuoteLine = (i: number): boolean =>
    i > 0 &&
    i + 1 < n &&
    quoted(i - 1) &&
    quoted(i + 1) &&
    ((at(i - 1).text.length >= 60 && /^\p{Ll}/u.test(at(i).text)) ||
      (trimmed[i]!.length <= MAX_WRAPPED_LINK && linkRest(trimmed[i]!) && endsInLink(trimmed[i - 1]!)));

  /**
   * Whether attributionSpan(i) has a line to give attribution(): one where an attribution may end,
   * or one with a bracket (unwrap may join words at it), before a line that ends the attribution.
   * Most lines end as no attribution can, whatever is joined before them. Asked of the lines in
   * order, it looks at each line once: `plainFrom` to `plainTo` (exclusive) are lines where none
   * may end, each going on from the one above.
   */
  let plainFrom = 0;
  let plainTo = 0;
  const mayEndBelow = (i: number): boolean => {
    if (i < plainFrom || i >= plainTo) plainFrom = plainTo = i;
    for (; plainTo < n && plainTo < i + MAX_ATTRIBUTION_LINES; plainTo++) {
      const j = plainTo;
      if (j > i && blank(j) && j + 1 < n && opensAddress(trimmed[j + 1]!) && !blank(j - 1)) continue;
      // a quoted line goes on an attribution only after "<" (">:" closing an address)
      if (j > i && (blank(j) || at(j).origin !== at(i).origin || quoted(j))) return false;
      if (bracket(j) || mayEnd(j)) return true;
    }
    return false;
  };

  /**
   * Lines `from` to `to` (exclusive) begin the attribution that lines `to` to `last` end, which is one
   * of its own: its client wrapped it (continuesAttribution).
   */
  const wrappedOnto = (from: number, to: number, last: number): boolean => {
    const head = trimmed.slice(from, to).filter((t) => t !== '');
    const tail = trimmed.slice(to, last + 1).filter((t) => t !== '');
    return head.length > 0 && continuesAttribution(unwrap(head.join(' ')), head.at(-1)!, unwrap(tail.join(' ')));
  };

  const attributionSpan = (i: number): { span: number; strength: AttributionStrength } | null => {
    if (!mayEndBelow(i)) return null;
    let joined = '';
    // whether a line of `joined` holds a bracket: without one, unwrap leaves it as it is
    let unwrapped = true;
    for (let k = 1; k <= MAX_ATTRIBUTION_LINES && i + k <= n; k++) {
      const last = i + k - 1;
      const t = trimmed[last]!;
      if (k > 1) {
        if (k === 2 && !mayOpenAttribution(at(i).text)) return null;
        if (blank(last) && last + 1 < n && opensAddress(trimmed[last + 1]!) && !blank(last - 1)) continue;
        if (blank(last) || at(last).origin !== at(i).origin) return null;
        // ">:" after "Ann <a@b" closes the address; any other quoted line ends the attribution
        if (quoted(last) && !(unclosedAddress(joined) && /^>\s*(?:[:：]|\S{0,40}\s*[:：]?)\s*$/.test(t))) return null;
        if (attributionOfItsOwn(last) && !wrappedOnto(i, last, last)) return null;
      }
      joined = k === 1 ? t : `${joined} ${t}`;
      unwrapped &&= !bracket(last);
      // an attribution is one short sentence; a long line is text, and patterns over it cost
      if (joined.length > MAX_MARKER_LENGTH) return null;
      if (unwrapped && !mayEnd(last)) continue;
      const strength = attribution(unwrap(joined));
      if (!strength) continue;
      // it starts where the shortest attribution ending on this line starts: the lines above
      // that one are the person's ("I will let you know.\nOp 16 aug. … het\nvolgende geschreven:")
      for (let later = i + 1; later <= last; later++) {
        if (blank(later)) continue;
        const rest = trimmed.slice(later, last + 1).filter((t) => t !== '');
        if (startsAttribution(rest[0]!) && attribution(unwrap(rest.join(' '))) && !wrappedOnto(i, later, last))
          return null;
      }
      return { span: k, strength };
    }
    return null;
  };

  /**
   * From/Sent/To/Subject as a client writes them: a From that names a writer, and an address or a
   * date in the Sent field ("From: the accounting team\nTo: everyone\nSubject: …" is a list). The
   * fields may stand one blank line apart (1C-Bitrix and Outlook lay them out as paragraphs).
   */
  const headerBlockAt = (i: number): boolean => {
    const first = fieldAt(i);
    if (!first) return false;
    const fields = new Map<Field, string>([[first.field, first.value]]);
    for (let j = i + 1; j < n && j <= i + MAX_HEADER_BLOCK_LINES; j++) {
      if (blank(j)) {
        if (j + 1 < n && !blank(j + 1) && fieldAt(j + 1)) continue;
        break;
      }
      const f = fieldAt(j);
      if (!f) continue; // a wrapped value
      if (!fields.has(f.field)) fields.set(f.field, f.value);
    }
    const from = fields.get('from');
    if (from === undefined || !isWriter(from)) return false;
    const address = /@|mailto:/.test(from);
    const dated = hasDate(fields.get('date') ?? '');
    // Outlook, 1C-Bitrix and web mail put From first; a block that starts otherwise ("Date:" in web
    // mail, "Message du :") says when: "Тема: …\nКому: …\nОт: Иван <a@b>" is a memo
    if (first.field !== 'from' && !dated) return false;
    // two fields are a block only with both a writer's address and a date ("From: Ann <a@b>\nTo: Bob
    // <c@d>" is the person's note of who writes to whom)
    if (fields.size === 2) return address && dated;
    // without an address, a client's block names the subject or sends at a time (Windows Mail's
    // "Sent: Thursday, 26 June 2014 15:05"): "From: Moscow\nTo: Berlin\nDate: 12 March" is a route
    const when = fields.get('date') ?? '';
    return fields.size >= 3 && (address || (dated && (fields.has('subject') || hasTime(when))));
  };

  /**
   * Header lines in a row under a rule, as Yandex, Thunderbird and web mail lay them out ("Кому:",
   * "Тема:", "От:", "Дата:" in any order): two of From, Date, Subject and To or more, one a line,
   * each named once (Cc may stand among them), and among them a From or To with an address or a
   * Date with a time ("10:10"), as a client's header always has: under a rule that structure is the evidence,
   * whoever the writer is. (A known separator, "-------- Original Message --------", was cut above.)
   * One such line ("Тема: …") is a person's, and so is a small ruled form ("----------\nТема:
   * возврат\nДата: 12.03\nСумма: 1500 руб.") or a route ("From: Moscow\nTo: Berlin\nDate: 12 March").
   */
  const fieldRunAt = (i: number): boolean => {
    const seen = new Set<Field>();
    let mail = false;
    for (let j = i; j < n && j < i + MAX_HEADER_BLOCK_LINES; j++) {
      if (at(j).origin !== at(i).origin) break;
      const f = fieldAt(j);
      if (!f || f.value === '' || seen.has(f.field)) break;
      seen.add(f.field);
      mail ||=
        ((f.field === 'from' || f.field === 'to') && hasAddress(f.value)) ||
        (f.field === 'date' && hasClockTime(f.value));
    }
    seen.delete('cc');
    return seen.size >= MIN_RUN_FIELDS && mail;
  };

  const introducesOriginal = (from: number): boolean => {
    const next = nextNonBlank(from);
    if (next < 0) return false;
    // Apple Mail quotes what it forwards: "Begin forwarded message:\n\n> From: …"
    const t = unquote(at(next).text);
    return headerField(t) !== null || attribution(t) !== null;
  };

  let cut: { at: number; why: Cut } | null = null;
  // Once an attribution has shown that this client quotes with a bare <blockquote>, the later
  // ones are quotes too: answering inline splits one quote into several.
  let bareBlockquoteQuotes = false;
  for (let i = 0; i < n && !cut; i++) {
    if (blank(i)) continue;
    const t = trimmed[i]!;
    if (quoted(i) || (bareBlockquoteQuotes && at(i).origin === 'maybe') || wrappedQuoteLine(i)) {
      const inner = unquote(t);
      // Apple Mail quotes a forwarded message whole, separator included
      if (separator(inner)?.kind === 'forwarded') {
        cut = { at: i, why: 'forwarded' };
        break;
      }
      // a quote that says what it quotes is evidence; a bare one alone is not (see below)
      if (i === 0 || blank(i - 1) || !quoted(i - 1)) quoteIntroduced ||= !!(attribution(inner) || separator(inner));
      removed[i] = true;
      continue;
    }
    if (at(i).origin === 'maybe') continue;
    if (ownAbove && isFooter(t)) {
      // A device footer is where the answer ends: below it, clients put the original, unquoted.
      const next = nextNonBlank(i + 1);
      if (next > i + 1 && !quoted(next) && at(next).origin === 'own') {
        cut = { at: i, why: 'footer' };
        break;
      }
    }
    const sep = separator(t);
    // "Original:" or "Forwarded:" alone is a label of the person's, unless a header block or an
    // attribution follows it ("Begin forwarded message:\n\nFrom: …"); a decorated one is a client's
    if (sep && (sep.decorated || sep.rest || introducesOriginal(i + 1))) {
      cut = { at: i, why: sep.kind };
      break;
    }
    if (headerBlockAt(i)) {
      cut = { at: i, why: 'header' };
      break;
    }
    if (isRuled(t)) {
      const next = nextNonBlank(i + 1);
      const rule = RULE.test(t);
      if (
        next >= 0 &&
        ((rule && (headerBlockAt(next) || separator(at(next).text.trim()))) ||
          (next <= i + 2 && at(next).origin === at(i).origin && fieldRunAt(next)))
      ) {
        cut = { at: i, why: 'header' };
        break;
      }
    }
    const found = attributionSpan(i);
    if (!found) {
      ownAbove = true;
      continue;
    }
    const next = nextNonBlank(i + found.span);
    const nextQuoted = next >= 0 && (quoted(next) || BAR_PREFIX.test(at(next).text) || at(next).origin === 'maybe');
    if (found.strength === 'weak' && !nextQuoted) {
      ownAbove = true;
      continue;
    }
    if (next >= 0 && !nextQuoted) {
      // An attribution over unquoted text: the client pasted the original below it as is.
      cut = { at: i, why: 'attribution' };
      break;
    }
    for (let j = i; j < i + found.span; j++) removed[j] = true;
    quoteIntroduced = true;
    if (next >= 0 && at(next).origin === 'maybe') bareBlockquoteQuotes = true;
    i += found.span - 1;
    // "| " lines under an attribution quote what it introduces, up to the first other line
    if (next >= 0 && BAR_PREFIX.test(at(next).text) && !quoted(next)) {
      let j = next;
      for (; j < n && (blank(j) || BAR_PREFIX.test(at(j).text)); j++) if (!blank(j)) removed[j] = true;
      i = j - 1;
    }
  }

  if (!cut) trailingBlockquote(lines, removed);

  let forwarded: Forwarded | null = null;
  if (cut) {
    for (let j = cut.at; j < n; j++) if (!blank(j)) removed[j] = true;
    // A forward, or an original with nothing written above it: the message is what was
    // forwarded, and it is kept as such rather than thrown away with the quote.
    if (cut.why === 'forwarded' || !ownAbove || (options.forwardSubject && cut.why !== 'footer')) {
      forwarded = readForwarded(kept.slice(cut.at));
      if (!forwarded.text && !forwarded.from) forwarded = null;
    }
  }

  const tail = trimTail(lines, removed);

  // Nothing left: what was taken for a signature or a quote was all there is, so it is the
  // answer (a message that is only "-- \nAnn", or only text marked with ">").
  const anyReply = () => removed.some((r, i) => !r && !blank(i));
  if (!anyReply() && !forwarded) {
    for (const i of tail) removed[i] = false;
    if (!anyReply() && !cut && !quoteIntroduced) removed.fill(false);
  }

  return {
    reply: render(kept, blank, (i) => !removed[i]),
    removed: render(kept, blank, (i) => removed[i]!),
    forwarded,
  };
}

/** `find` of each line index below `n`, found at most once for each (null included). */
function memo<T>(n: number, find: (i: number) => T): (i: number) => T {
  const known = new Array<T>(n);
  const asked = new Uint8Array(n);
  return (i) => {
    if (!asked[i]) {
      known[i] = find(i);
      asked[i] = 1;
    }
    return known[i]!;
  };
}

/** `test` of each line index below `n`, asked at most once for each. */
function once(n: number, test: (i: number) => boolean): (i: number) => boolean {
  const known = new Int8Array(n); // 0: not asked yet, 1: true, -1: false
  return (i) => {
    if (known[i] === 0) known[i] = test(i) ? 1 : -1;
    return known[i] === 1;
  };
}

/**
 * A bare <blockquote> that ends the message below the answer is the original of a client that
 * writes no attribution, as "> " lines at the end are. One the answer goes on after is the
 * person's own (an inline quote), and so is one the answer introduces: "The log:" ends with a colon.
 */
function trailingBlockquote(lines: Line[], removed: boolean[]): void {
  const blank = (i: number) => lines[i]!.text.trim() === '';
  let last = lines.length - 1;
  while (last >= 0 && blank(last)) last--;
  if (last < 0 || lines[last]!.origin !== 'maybe' || removed[last]) return;
  let first = last;
  while (first > 0 && (lines[first - 1]!.origin === 'maybe' || blank(first - 1))) first--;
  let above = first - 1;
  while (above >= 0 && (blank(above) || removed[above])) above--;
  if (above < 0 || lines[above]!.origin !== 'own' || /[:：]\s*$/.test(lines[above]!.text)) return;
  for (let j = first; j <= last; j++) if (!blank(j)) removed[j] = true;
}

/**
 * Signature, device footer and mailing-list footer at the end of what is left, in any order; a
 * few rounds are enough for real mail and keep a message of a thousand footers linear.
 * Returns the lines it removed.
 */
function trimTail(lines: Line[], removed: boolean[]): number[] {
  const n = lines.length;
  const blank = (i: number) => lines[i]!.text.trim() === '';
  const taken: number[] = [];
  for (let round = 0; round < 4; round++) {
    let last = -1;
    for (let i = n - 1; i >= 0; i--) {
      if (!removed[i] && !blank(i)) {
        last = i;
        break;
      }
    }
    if (last < 0) break;
    if (isFooter(lines[last]!.text) || TRACKER_MARK.test(lines[last]!.text)) {
      removed[last] = true;
      taken.push(last);
      continue;
    }
    const kept: number[] = [];
    for (let i = last; i >= 0 && kept.length <= MAX_SIGNATURE_LINES + 1; i--)
      if (!removed[i] && !blank(i)) kept.push(i);
    // "-- " and what follows it
    const delimiter = kept.find((i) => SIGNATURE_DELIMITER.test(lines[i]!.text));
    if (delimiter !== undefined) {
      for (const i of kept.filter((k) => k >= delimiter)) {
        removed[i] = true;
        taken.push(i);
      }
      continue;
    }
    // "____\nlist-name mailing list\nlist@host\nhttp://host/mailman/listinfo/…"
    const rule = kept
      .slice(0, MAX_LIST_FOOTER_LINES + 1)
      .find((i) => RULE.test(lines[i]!.text) || /^_{2,}\s*$/.test(lines[i]!.text));
    if (rule !== undefined && kept.some((i) => i > rule && LIST_FOOTER.test(lines[i]!.text))) {
      for (const i of kept.filter((k) => k >= rule)) {
        removed[i] = true;
        taken.push(i);
      }
      continue;
    }
    break;
  }
  return taken;
}

/**
 * "reply On Wed, … wrote:" — a person's words on the line of an attribution stay: the line is
 * split where the attribution starts, and only the attribution is a candidate for cutting.
 * `kept`: the lines right-trimmed and split; `lines`: the same without invisible characters.
 */
function splitInlineAttributions(source: Line[]): { kept: Line[]; lines: Line[] } {
  const kept: Line[] = [];
  const lines: Line[] = [];
  const push = (text: string, origin: Line['origin'], seen = visible(text)) => {
    kept.push({ text, origin });
    lines.push({ text: seen, origin });
  };
  for (const { text: untrimmed, origin } of source) {
    const text = untrimmed.trimEnd();
    const seen = visible(text);
    const tail = origin === 'own' && !QUOTE_PREFIX.test(seen) ? attributionTail(seen) : -1;
    if (tail <= 0) {
      push(text, origin, seen);
      continue;
    }
    const at = rawIndex(text, tail);
    const before = text.slice(0, at).replace(/[-–—\s]+$/, '');
    if (before.trim()) push(before, origin);
    push(text.slice(at), origin);
  }
  return { kept, lines };
}

/**
 * Joins the chosen lines. Where lines were left out between two chosen ones, exactly one blank
 * line marks the seam; elsewhere runs of three or more blank lines collapse to one. `blank`: the
 * line shows nothing (nothing but invisible characters and whitespace).
 */
export function render(lines: Line[], blank: (i: number) => boolean, chosen: (i: number) => boolean): string {
  const out: string[] = [];
  let blanks = 0;
  let seam = false;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.text;
    if (blank(i)) {
      blanks++;
      continue;
    }
    if (!chosen(i)) {
      seam = true;
      continue;
    }
    if (out.length > 0) {
      const gap = seam ? 1 : blanks >= 3 ? 1 : blanks;
      for (let g = 0; g < gap; g++) out.push('');
    }
    out.push(text);
    blanks = 0;
    seam = false;
  }
  return out.join('\n').trim();
}
