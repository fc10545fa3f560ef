// What a ticket id is: the one definition that reply addresses (address.ts), the references in a
// message (ticket-ref.ts), the API and the CLI parse ticket ids with. Imports nothing.
/**
 * A ticket id: TKT- and a number that fits a bigint, in any case (clients lowercase addresses); the
 * stored form is upper case. No flags, so that the pattern reads the same in the OpenAPI document.
 */
export const TICKET_ID = '[Tt][Kk][Tt]-\\d{1,18}';
export const TICKET_ID_RE = new RegExp(`^${TICKET_ID}$`);

/** The stored form of a ticket id, or null when `value` is not one. */
export function parseTicketId(value: string): string | null {
  return TICKET_ID_RE.test(value) ? value.toUpperCase() : null;
}
