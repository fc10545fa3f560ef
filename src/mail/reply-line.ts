// What an SMTP reply line may hold: printable ASCII, at most RFC 5321's 512 octets (4.5.3.1.5, code
// and CRLF included), and a value the client sent (an address, a domain, a tag) quoted in part when
// it is long. The factories (src/smtp/reply.ts, src/mail/auth-replies.ts) quote; the whole value
// stays in the decision's log line. Imports nothing of ours.
import { domainToASCII } from 'node:url';

/** RFC 5321 4.5.3.1.5: a reply line, its code and CRLF included. */
export const REPLY_LINE_MAX = 512;
/** A quoted value longer than this is shown as its start and `...` (a real address is under 100). */
export const QUOTE_MAX = 200;
/** What stands for the rest of a value or a line that was cut (ASCII: not every client reads UTF-8). */
export const CUT_MARK = '...';

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const unprintable = (s: string) => s.replace(/[^\x20-\x7e]/gu, '?');

/**
 * Reply text is printable ASCII (RFC 5321 4.2.1, and what every client can show), whatever a client
 * sent: smtp-server hands addresses over with their domain decoded to Unicode (xn--… to пример.рф),
 * a SMTPUTF8 local part may be anything, and smtp-server writes a reply's text as UTF-8 unchanged
 * (only control characters become spaces), to a client that asked for SMTPUTF8 or not. A word with
 * a dot after its last `@` (or without one) goes back with that domain as its A-label; what is left
 * that is not printable ASCII, as `?`.
 */
export function asciiReplyText(text: string): string {
  if (PRINTABLE_ASCII.test(text)) return text;
  const words = text.replace(/[^\s<>()"',;]+/gu, (word) => {
    if (PRINTABLE_ASCII.test(word)) return word;
    const at = word.lastIndexOf('@');
    const local = word.slice(0, at + 1);
    const domain = word.slice(at + 1);
    // a domain is at most 253 octets: a longer one has no A-label, and is not worth converting
    const aLabel = domain.includes('.') && domain.length <= 253 ? domainToASCII(domain.replace(/\.$/, '')) : '';
    return unprintable(local) + (aLabel && PRINTABLE_ASCII.test(aLabel) ? aLabel : unprintable(domain));
  });
  return unprintable(words); // what parts the words: a no-break or ideographic space is not ASCII either
}

/**
 * A client's value as a reply quotes it: in printable ASCII, and past QUOTE_MAX characters its start
 * and `...`, so that a reply quoting one or two values keeps its own words and fits its line.
 */
export function quote(value: string): string {
  // the start is all that can be shown: only so much of a 100 K value is converted
  const ascii = asciiReplyText(value.length > 4 * QUOTE_MAX ? value.slice(0, 4 * QUOTE_MAX) : value);
  return ascii.length > QUOTE_MAX ? ascii.slice(0, QUOTE_MAX - CUT_MARK.length) + CUT_MARK : ascii;
}

/**
 * `text` as the rest of a reply line that starts with `prefix` ("550 5.7.1"): in printable ASCII, and
 * cut, with `...`, so that the whole line and its CRLF are at most REPLY_LINE_MAX octets. The last
 * resort behind quote(): a reply whose values are quoted never reaches the cut.
 */
export function fitReplyLine(prefix: string, text: string): string {
  const room = REPLY_LINE_MAX - `${prefix} \r\n`.length;
  // a text that long is cut anyway: only its start is converted (its ASCII is never shorter than half)
  const ascii = asciiReplyText(text.length > 4 * room ? text.slice(0, 4 * room) : text);
  return ascii.length <= room ? ascii : ascii.slice(0, room - CUT_MARK.length) + CUT_MARK;
}
