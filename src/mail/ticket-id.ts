// What a ticket id is: the one definition that reply addresses (address.ts), the references in a
// message (ticket-ref.ts), the API and the CLI parse ticket ids with. Imports nothing.
/**
 * A ticket id: TKT- and a number that fits a bigint, in any case (clients lowercase addresses); the
 * stored form is upper case. No flags, so that the pattern reads the same in the OpenAPI document.
 */
export const TICKET_ID = '[Tt][Kk][Tt]-\\d{1,18}';
export const TICKET_ID_RE = new RegExp(`^${TICKET_ID}$`);
/**
 * The id a new ticket may have: its number without leading zeros. TKT-0001 and TKT-1 read as one
 * number to a person (and to a CRM that pads numbers), so only one of them can be made (attack run 4,
 * F-info-1); a reference in mail to TKT-0001 reaches TKT-1 (canonicalTicketId) unless a ticket
 * TKT-0001, made before ids were checked, exists.
 */
export const NEW_TICKET_ID_RE = /^[Tt][Kk][Tt]-(?:0|[1-9]\d{0,17})$/;

/** The stored form of a ticket id, or null when `value` is not one. */
export function parseTicketId(value: string): string | null {
  return TICKET_ID_RE.test(value) ? value.toUpperCase() : null;
}

/** The form a new ticket would have (the number without leading zeros) of a parsed id: TKT-0042 is TKT-42. */
export const canonicalTicketId = (id: string): string => id.toUpperCase().replace(/^TKT-0+(?=\d)/, 'TKT-');

/**
 * The ticket a reference in mail names: TKT-0001 is TKT-1, unless a ticket of that very id exists
 * (made before new ids were checked: it keeps its mail). `find` looks one id up.
 */
export async function findReferenced<T>(id: string, find: (id: string) => Promise<T | null>): Promise<T | null> {
  const canonical = canonicalTicketId(id);
  if (canonical === id) return find(id);
  const [exact, shortest] = await Promise.all([find(id), find(canonical)]);
  return exact ?? shortest;
}

/** Whether `named` (a parsed id from a message) names the stored ticket `ticketId`. */
export const namesTicket = (named: string, ticketId: string): boolean =>
  named === ticketId || canonicalTicketId(named) === ticketId;
