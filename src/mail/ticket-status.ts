// Which tickets take mail: every status but those of TICKET_CLOSED_STATUSES (compared without
// case, so a CRM's `CLOSED` matches `closed`). A status the operator does not list takes mail: a
// status the CRM adds later must not start refusing customers' replies.
export interface StatusRules {
  ticketClosedStatuses: readonly string[];
}

export function isClosed(status: string, rules: StatusRules): boolean {
  const s = status.trim().toLowerCase();
  return rules.ticketClosedStatuses.some((c) => c.toLowerCase() === s);
}

/** The status `ticket close` writes: the first closed status, as the operator typed it. */
export function closedStatus(rules: StatusRules): string {
  return rules.ticketClosedStatuses[0] ?? 'closed';
}
