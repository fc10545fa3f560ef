// Where a message names the ticket it is delivered to, in its header alone (no I/O): a To or Cc
// address of the ticket, [TKT-…] in the Subject, X-Ticket-ID, or one of our notifications of the
// ticket in In-Reply-To or References. authorize() asks which of these fields a staff member's
// signature covers: the envelope recipient is not signed, so without it a genuine staff message,
// replayed unchanged, would authenticate in any ticket.
import type { AddressObject } from 'mailparser';
import { type AddressRules, classifyRecipient } from './address.js';
import { mailboxes, type ParsedHeader, splitIds } from './parse.js';
import { namesTicket, TICKET_ID } from './ticket-id.js';
import { headerTicketId, subjectTicketIds } from './ticket-ref.js';

/** A header field (lower case, as DKIM's `h=` lists it) that can name a ticket. */
export type NamingField = 'to' | 'cc' | 'subject' | 'x-ticket-id' | 'in-reply-to' | 'references';

// our notifications' Message-IDs (src/outbox/notify.ts): <notify-TKT-1042-<hex>@domain>
const NOTIFICATION_ID_RE = new RegExp(`^<notify-(${TICKET_ID})-[0-9a-f]+@([^<>@\\s]+)>$`, 'i');

const namedByIds = (ids: string[], ticketId: string, rules: AddressRules): boolean =>
  ids.some((id) => {
    const m = NOTIFICATION_ID_RE.exec(id);
    return !!m && m[1]!.toUpperCase() === ticketId && rules.mailDomains.includes(m[2]!.toLowerCase());
  });

const namedByAddresses = (field: unknown, ticketId: string, rules: AddressRules): boolean =>
  mailboxes(field as AddressObject | AddressObject[] | undefined).some(({ address }) => {
    const r = classifyRecipient(address, rules);
    return r.kind === 'ticket' && namesTicket(r.ticketId, ticketId);
  });

/** The fields of the header that name `ticketId` (upper case), in no particular order. */
export function fieldsNamingTicket(header: ParsedHeader, ticketId: string, rules: AddressRules): NamingField[] {
  const named: [NamingField, boolean][] = [
    ['to', namedByAddresses(header.headers.get('to'), ticketId, rules)],
    ['cc', namedByAddresses(header.headers.get('cc'), ticketId, rules)],
    ['subject', subjectTicketIds(header.subject).some((named) => namesTicket(named, ticketId))],
    ['x-ticket-id', namesTicket(headerTicketId(header.headers) ?? '', ticketId)],
    ['in-reply-to', namedByIds(splitIds(header.inReplyTo ?? undefined), ticketId, rules)],
    ['references', namedByIds(header.references, ticketId, rules)],
  ];
  return named.filter(([, yes]) => yes).map(([field]) => field);
}
