// The text and the reply of a whole message: the text part, or the text of the HTML where
// mailparser gave none. The one home of both for the pipeline (steps.ts), `ticket-mx reply-text`
// and `ticket-mx reprocess`, so that all three see the same text.
import { htmlToText } from '../html/text.js';
import { type ParsedMessage, parseMessage } from '../parse.js';
import { extractReply, type ReplyText } from './index.js';

/** The text part; for a message with only HTML, the text of its HTML (mailparser's conversion is off: parse.ts). */
export function bodyText(parsed: Pick<ParsedMessage, 'text' | 'html'>): string {
  return parsed.text || (parsed.html ? htmlToText(parsed.html) : '');
}

/** `text` is the message's bodyText(), for a caller that has it already. */
export function replyOfParsed(
  parsed: Pick<ParsedMessage, 'text' | 'html' | 'subject'>,
  text: string = bodyText(parsed),
): ReplyText {
  return extractReply({ text, html: parsed.html, subject: parsed.subject });
}

/** Parses raw bytes (mailparser may refuse them: UnparseableMessage) and extracts the reply. */
export async function replyOfRaw(raw: Buffer): Promise<ReplyText> {
  return replyOfParsed(await parseMessage(raw));
}
