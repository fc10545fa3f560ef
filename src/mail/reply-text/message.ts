// The reply of a whole message, decoded the way the DATA path decodes it: the text part, or the
// text of the HTML where mailparser gave none. Shared by DATA, `ticket-mx reply-text` and
// `ticket-mx reprocess`, so that all three see the same text.
import { htmlToText } from '../html/text.js';
import { type ParsedMessage, parseMessage } from '../parse.js';
import { extractReply, type ReplyText } from './index.js';

/** mailparser derives text from HTML only for a lone text/html part, not inside multipart/related. */
export function bodyText(parsed: Pick<ParsedMessage, 'text' | 'html'>): string {
  return parsed.text || (parsed.html ? htmlToText(parsed.html) : '');
}

export function replyOfParsed(parsed: Pick<ParsedMessage, 'text' | 'html' | 'subject'>): ReplyText {
  return extractReply({ text: bodyText(parsed), html: parsed.html, subject: parsed.subject });
}

/** Parses raw bytes (mailparser may refuse them: UnparseableMessage) and extracts the reply. */
export async function replyOfRaw(raw: Buffer): Promise<ReplyText> {
  return replyOfParsed(await parseMessage(raw));
}
