// The text and the reply of a whole message: the text part, or the text of the HTML where
// mailparser gave none. The one home of both for the pipeline (steps.ts), `ticket-mx reply-text`
// and `ticket-mx reprocess`, so that all three see the same text, bounded the same way.
import { htmlToText } from '../html/text.js';
import { type ParsedMessage, parseMessage } from '../parse.js';
import { extractReply, type LineBound, type ReplyText } from './index.js';

/** The text part; for a message with only HTML, the text of its HTML (mailparser's conversion is off: parse.ts). */
export function bodyText(parsed: Pick<ParsedMessage, 'text' | 'html'>): string {
  return parsed.text || (parsed.html ? htmlToText(parsed.html) : '');
}

/**
 * What reply extraction is given at most of the text and of the HTML, each (UTF-16 code units):
 * the answer is at the top, and past this there is only more of what it quotes. In the pipeline (src/pipeline/steps.ts) the full
 * text, the stored HTML and the raw message are kept whole; only the reply (and what was removed from
 * it) is taken from the first part. Extraction parses and lays out the HTML again, about 0.35 s of
 * CPU per MB (`<td>x` cells, after htmlToText was made linear): 2 MB of HTML (MAX_HTML_LENGTH)
 * took 0.8–0.9 s, this much about 0.1 s. Lines need no bound of their own: a 60 KB line costs
 * the reply rules under 3 ms as text and under 20 ms as HTML.
 */
export const REPLY_INPUT_MAX_CHARS = 256 * 1024;

/** The first `max` code units of `s`, cut before the last `boundary` in its second half, never inside a pair. */
function cutBefore(s: string, max: number, boundary: string): string {
  if (s.length <= max) return s;
  const at = s.lastIndexOf(boundary, max);
  let end = at > max / 2 ? at : max;
  const before = s.charCodeAt(end - 1);
  if (before >= 0xd800 && before <= 0xdbff) end--;
  return s.slice(0, end);
}

/**
 * `text` is the message's bodyText(), for a caller that has it already. `inputCut`: the reply was
 * taken from the first REPLY_INPUT_MAX_CHARS of the text or the HTML.
 */
export function replyOfParsed(
  parsed: Pick<ParsedMessage, 'text' | 'html' | 'subject'>,
  text: string = bodyText(parsed),
  bound?: LineBound,
): ReplyText & { inputCut: boolean } {
  const cutText = cutBefore(text, REPLY_INPUT_MAX_CHARS, '\n');
  const html = parsed.html === null ? null : cutBefore(parsed.html, REPLY_INPUT_MAX_CHARS, '<');
  const inputCut = cutText !== text || html !== parsed.html;
  return { ...extractReply({ text: cutText, html, subject: parsed.subject, ...(bound ? { bound } : {}) }), inputCut };
}

/** Parses raw bytes (mailparser may refuse them: UnparseableMessage) and extracts the reply. */
export async function replyOfRaw(raw: Buffer): Promise<ReplyText & { inputCut: boolean }> {
  return replyOfParsed(await parseMessage(raw));
}
