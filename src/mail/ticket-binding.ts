// Where a message names the ticket it is delivered to, in its header alone (no I/O): a To or Cc
// address of the ticket, [TKT-…] in the Subject, X-Ticket-ID, or one of our notifications of the
// ticket in In-Reply-To or References. authorize() asks which of these fields a staff member's
// signature covers: the envelope recipient is not signed, so without it a genuine staff message,
// replayed unchanged, would authenticate in any ticket.
import { type AddressRules, classifyRecipient } from './address.js';
import type { ParsedHeader } from './parse.js';
import { parseTicketId, TICKET_ID } from './ticket-id.js';

/** A header field (lower case, as DKIM's `h=` lists it) that can name a ticket. */
export type NamingField = 'to' | 'cc' | 'subject' | 'x-ticket-id' | 'in-reply-to' | 'references';

const SUBJECT_TAG_RE = new RegExp(`\\[\\s*(${TICKET_ID})\\s*\\]`, 'g');
// our notifications' Message-IDs (src/outbox/notify.ts): <notify-TKT-1042-<hex>@domain>
const NOTIFICATION_ID_RE = new RegExp(`^<notify-(${TICKET_ID})-[0-9a-f]+@([^<>@\\s]+)>$`, 'i');

type AddressValue = { address?: string; group?: AddressValue[] };
type AddressField = { value?: AddressValue[] };

const addressesOf = (value: unknown): string[] =>
  [value ?? []]
    .flat()
    .flatMap((field) => (field as AddressField).value ?? [])
    .flatMap((a) => (a.group ? a.group : [a]))
    .map((a) => a.address ?? '')
    .filter(Boolean);

const textOf = (value: unknown): string | null =>
  typeof value === 'string' ? value : Array.isArray(value) && typeof value[0] === 'string' ? value[0] : null;

const namedByIds = (ids: string[], ticketId: string, rules: AddressRules): boolean =>
  ids.some((id) => {
    const m = NOTIFICATION_ID_RE.exec(id);
    return !!m && m[1]!.toUpperCase() === ticketId && rules.mailDomains.includes(m[2]!.toLowerCase());
  });

/** The fields of the header that name `ticketId` (upper case), in no particular order. */
export function fieldsNamingTicket(header: ParsedHeader, ticketId: string, rules: AddressRules): NamingField[] {
  const fields: NamingField[] = [];
  for (const field of ['to', 'cc'] as const) {
    const named = addressesOf(header.headers.get(field)).some((address) => {
      const r = classifyRecipient(address, rules);
      return r.kind === 'ticket' && r.ticketId === ticketId;
    });
    if (named) fields.push(field);
  }
  if ([...(header.subject ?? '').matchAll(SUBJECT_TAG_RE)].some((m) => m[1]!.toUpperCase() === ticketId))
    fields.push('subject');
  const header_ = textOf(header.headers.get('x-ticket-id'));
  if (header_ !== null && parseTicketId(header_.trim()) === ticketId) fields.push('x-ticket-id');
  if (namedByIds(header.inReplyTo?.match(/<[^<>\s]+>/g) ?? [], ticketId, rules)) fields.push('in-reply-to');
  if (namedByIds(header.references, ticketId, rules)) fields.push('references');
  return fields;
}
