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

const SUBJECT_TAG_RE = new RegExp(`\\[\\s*(${TICKET_ID})\\s*\\]`, 'g');

/** The ticket ids in [TKT-…] tags of a subject, upper case, in order. */
export const subjectTicketIds = (subject: string | null): string[] =>
  subject ? [...subject.matchAll(SUBJECT_TAG_RE)].map((m) => m[1]!.toUpperCase()) : [];

/** The ticket an X-Ticket-ID field names (the header block holds one at most: bytes.ts). */
export function headerTicketId(headers: ParsedMessage['headers']): string | null {
  const raw = headers.get('x-ticket-id');
  const value = typeof raw === 'string' ? raw : Array.isArray(raw) && typeof raw[0] === 'string' ? raw[0] : null;
  return value === null ? null : parseTicketId(value.trim());
}

export function ticketReferences(
  parsed: Pick<ParsedMessage, 'headers' | 'subject' | 'inReplyTo' | 'references'>,
): TicketReferences {
  const ids = [...parsed.references, ...splitIds(parsed.inReplyTo ?? undefined)];
  return {
    header: headerTicketId(parsed.headers),
    subject: subjectTicketIds(parsed.subject)[0] ?? null,
    messageIds: [...new Set(ids)],
  };
}
