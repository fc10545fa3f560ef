// SmtpReply and its named factories: the only place reply codes and log codes are written.
// The catalogue below is the contract; a test keeps the README's table equal to it.

export interface CatalogueEntry {
  code: number;
  enhanced: string;
  /** When ticket-mx answers this, for the README. */
  when: string;
}

export const CATALOGUE = {
  MAIL_FROM_ACCEPTED: { code: 250, enhanced: '2.1.0', when: 'MAIL FROM accepted (null sender <> included)' },
  RCPT_TICKET: { code: 250, enhanced: '2.1.5', when: 'recipient is support+TKT-…@ of a known ticket' },
  RCPT_POSTMASTER: { code: 250, enhanced: '2.1.5', when: 'postmaster@ or abuse@ one of our domains (RFC 5321 4.5.1); stored as unrouted mail' },
  RCPT_RELAY_DENIED: { code: 550, enhanced: '5.7.1', when: 'recipient domain is not in MAIL_DOMAINS' },
  RCPT_NO_SUCH_MAILBOX: { code: 550, enhanced: '5.1.1', when: 'local part is not support+<tag>, postmaster or abuse' },
  RCPT_BAD_TAG: { code: 550, enhanced: '5.1.1', when: 'support+<tag> where the tag is not TKT-<digits>' },
  RCPT_UNKNOWN_TICKET: { code: 550, enhanced: '5.1.1', when: 'the tag names a ticket that does not exist' },
  RCPT_TEMPFAIL: { code: 451, enhanced: '4.3.0', when: 'database trouble or our deadline while deciding a recipient' },
  DATA_COMMITTED: { code: 250, enhanced: '2.0.0', when: 'the message is committed in PostgreSQL' },
  DATA_DUPLICATE: { code: 250, enhanced: '2.0.0', when: 'a retry of a message already committed for every recipient; no new row' },
  DATA_TOO_BIG: { code: 552, enhanced: '5.3.4', when: 'the message is larger than MAX_MESSAGE_BYTES (nothing past the cap is buffered)' },
  DATA_TEMPFAIL: { code: 451, enhanced: '4.3.0', when: 'database error, pool timeout or our deadline while storing; nothing stored' },
  DATA_ABORTED: { code: 0, enhanced: '', when: 'the client went away during DATA; nothing stored, no reply possible' },
} as const satisfies Record<string, CatalogueEntry>;

export type LogCode = keyof typeof CATALOGUE;

export class SmtpReply {
  readonly code: number;
  readonly enhanced: string;
  constructor(
    readonly logCode: LogCode,
    readonly text: string,
  ) {
    this.code = CATALOGUE[logCode].code;
    this.enhanced = CATALOGUE[logCode].enhanced;
  }

  get ok(): boolean {
    return this.code >= 200 && this.code < 300;
  }

  /** The line after the code, e.g. "5.1.1 No such ticket TKT-404". */
  get message(): string {
    return this.enhanced ? `${this.enhanced} ${this.text}` : this.text;
  }

  toString(): string {
    return `${this.code} ${this.message}`;
  }

  /** smtp-server takes rejections as errors carrying responseCode. */
  toError(): Error & { responseCode: number } {
    return Object.assign(new Error(this.message), { responseCode: this.code });
  }
}

export const reply = {
  // smtp-server writes the text of a successful MAIL FROM / RCPT TO itself ("Accepted")
  mailFromAccepted: () => new SmtpReply('MAIL_FROM_ACCEPTED', 'Accepted'),
  ticketRecipient: () => new SmtpReply('RCPT_TICKET', 'Accepted'),
  postmaster: () => new SmtpReply('RCPT_POSTMASTER', 'Accepted'),
  relayDenied: (domain: string) => new SmtpReply('RCPT_RELAY_DENIED', `Relaying denied: we do not accept mail for ${domain}`),
  noSuchMailbox: (address: string) => new SmtpReply('RCPT_NO_SUCH_MAILBOX', `No such mailbox <${address}>; replies go to support+TKT-<number>@`),
  badTag: (tag: string) => new SmtpReply('RCPT_BAD_TAG', `No such mailbox: "${tag}" is not a ticket reference (expected TKT-<number>)`),
  noSuchTicket: (ticketId: string) => new SmtpReply('RCPT_UNKNOWN_TICKET', `No such ticket ${ticketId}`),
  rcptTempfail: (tag: string) => new SmtpReply('RCPT_TEMPFAIL', `Temporary local problem, please try again later [${tag}]`),
  committed: (id: string) => new SmtpReply('DATA_COMMITTED', `Ok: committed as ${id}`),
  duplicate: (id: string) => new SmtpReply('DATA_DUPLICATE', `Ok: already committed as ${id}`),
  tooBig: (limit: number) => new SmtpReply('DATA_TOO_BIG', `Message exceeds the maximum size of ${limit} bytes`),
  dataTempfail: (tag: string) => new SmtpReply('DATA_TEMPFAIL', `Temporary local problem, message not stored, please try again later [${tag}]`),
};
