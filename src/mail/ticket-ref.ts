// Where a message to the bare support@ address says which ticket it is about, from the message
// alone: X-Ticket-ID, then [TKT-…] in the subject, then the Message-IDs it replies to (which the
// DATA phase matches against the notifications we sent).
import type { ParsedMessage } from './parse.js';
import { splitIds } from './parse.js';
import { parseTicketId, TICKET_ID } from './ticket-id.js';

export interface TicketReferences {
  header: string | null;
  subject: string | null;
  /** References then In-Reply-To: the last is the most specific. */
  messageIds: string[];
}

const SUBJECT_RE = new RegExp(`\\[\\s*(${TICKET_ID})\\s*\\]`);

export function ticketReferences(
  parsed: Pick<ParsedMessage, 'headers' | 'subject' | 'inReplyTo' | 'references'>,
): TicketReferences {
  const raw = parsed.headers.get('x-ticket-id');
  const headerValue = typeof raw === 'string' ? raw : Array.isArray(raw) && typeof raw[0] === 'string' ? raw[0] : null;
  const subject = parsed.subject ? SUBJECT_RE.exec(parsed.subject) : null;
  const ids = [...parsed.references, ...splitIds(parsed.inReplyTo ?? undefined)];
  return {
    header: headerValue === null ? null : parseTicketId(headerValue.trim()),
    subject: subject ? subject[1]!.toUpperCase() : null,
    messageIds: [...new Set(ids)],
  };
}
