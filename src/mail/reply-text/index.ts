// The answer a person typed, cut out of a reply: quoted original, attribution, signature and
// device footer go to `removed`; a forwarded message is kept as data. text.ts holds the rules
// for lines, html.ts the markers of HTML, languages.ts what clients write in each language.
// Decoding MIME is parse.ts's job; nothing here does I/O.
import type { Line } from '../html/text.js';
import { parseHtml, stripTags } from '../html/tree.js';
import type { Forwarded } from './forward.js';
import { htmlLines } from './html.js';
import { forgetAttributions, INVISIBLE_CHARS, isForwardSubject } from './patterns.js';
import { type Split, splitReply, textLines } from './text.js';

export type { Forwarded };

export interface ReplyInput {
  text?: string | null;
  html?: string | null;
  /** The message's subject, when known: "Fwd: …" makes an Outlook header block a forward, not a quote. */
  subject?: string | null;
  /**
   * The most lines, and lines ending with a colon, that the rules may read (the main thread's share:
   * src/pipeline/inline.ts): past it, PastLineBound before any rule runs. Counted on the lines the rules
   * read, whatever made them (a base64 or quoted-printable body, a lone CR, `&#10;` in a <pre>, <br>).
   */
  bound?: LineBound;
}

export interface LineBound {
  lines: number;
  colonLines: number;
}

/** The text or the HTML has more lines than ReplyInput.bound allows. */
export class PastLineBound extends Error {
  override name = 'PastLineBound';
}

/** A line ending with a colon, white space and invisible characters aside: where an attribution or a header field may end. */
const COLON_END = new RegExp(`[:：][\\s${INVISIBLE_CHARS}]*$`, 'u');

function within(lines: Line[], bound: LineBound | undefined): Line[] {
  if (!bound) return lines;
  if (lines.length > bound.lines) throw new PastLineBound(`${lines.length} lines, more than ${bound.lines}`);
  let colons = 0;
  for (const l of lines)
    if (COLON_END.test(l.text) && ++colons > bound.colonLines)
      throw new PastLineBound(`more than ${bound.colonLines} lines ending with a colon`);
  return lines;
}

export interface ReplyText {
  reply: string;
  removed: string;
  /** Which body the reply was taken from; 'none' when the message has no text at all. */
  method: 'html' | 'text' | 'none';
  /** The message the person forwarded, when there is one; `reply` is then the note above it. */
  forwarded?: Forwarded;
}

export function extractReply(input: ReplyInput): ReplyText {
  forgetAttributions();
  const html = input.html ?? '';
  const doc = html.trim() ? parseHtml(html) : null;
  // HTML too big or deep to parse still has text: a linear strip of its tags
  const text = input.text || (html && !doc ? stripTags(html) : '');
  const options = { forwardSubject: isForwardSubject(input.subject) };
  const fromText = text.trim() ? splitReply(within(textLines(text), input.bound), options) : null;
  if (doc) {
    const fromHtml = splitReply(within(htmlLines(doc), input.bound), options);
    // The HTML markers are the better evidence, unless they found no answer at all, or found no
    // quote where the text part did (a client whose HTML quoting we do not know).
    const empty = fromHtml.reply === '' && !fromHtml.forwarded;
    const textKnowsBetter = fromText && (empty || (fromHtml.removed === '' && fromText.removed !== ''));
    if (!textKnowsBetter && (fromHtml.reply !== '' || fromHtml.forwarded || !fromText)) return result(fromHtml, 'html');
  }
  if (fromText) return result(fromText, 'text');
  return { reply: '', removed: '', method: 'none' };
}

function result(split: Split, method: 'html' | 'text'): ReplyText {
  const out: ReplyText = { reply: split.reply, removed: split.removed, method };
  if (split.forwarded) out.forwarded = split.forwarded;
  return out;
}
