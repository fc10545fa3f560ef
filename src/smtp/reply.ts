// SmtpReply and its named factories: the only place reply codes and log codes are written.
// The catalogue below is the contract; a test keeps the README's table equal to it. The exact
// 5.7.x / 4.7.x of an authorization refusal is the finding's (src/mail/auth-replies.ts).
import type { AuthReply } from '../mail/auth-replies.js';
import { fitReplyLine, quote } from '../mail/reply-line.js';

export interface CatalogueEntry {
  code: number;
  enhanced: string;
  /** When ticket-mx answers this, for the README. */
  when: string;
}

export const CATALOGUE = {
  MAIL_FROM_ACCEPTED: { code: 250, enhanced: '2.1.0', when: 'MAIL FROM accepted (null sender <> included)' },
  MAIL_PARAMETER_UNKNOWN: {
    code: 555,
    enhanced: '5.5.4',
    when:
      "MAIL FROM with a parameter of no extension we advertise (we take SIZE, 8BITMIME's BODY and SMTPUTF8; " +
      "not DSN's RET and ENVID: DSN is not advertised)",
  },
  RCPT_PARAMETER_UNKNOWN: {
    code: 555,
    enhanced: '5.5.4',
    when: "RCPT TO with a parameter: no extension we advertise has one (DSN's NOTIFY and ORCPT neither)",
  },
  RCPT_TICKET: { code: 250, enhanced: '2.1.5', when: 'recipient is support+TKT-…@ of a known ticket' },
  RCPT_SUPPORT: {
    code: 250,
    enhanced: '2.1.5',
    when: 'the bare support@ address: the ticket is found at DATA (see What lands in the ticket)',
  },
  RCPT_POSTMASTER: {
    code: 250,
    enhanced: '2.1.5',
    when: 'postmaster@ or abuse@ one of our domains (RFC 5321 4.5.1); stored as unrouted mail',
  },
  RCPT_BOUNCE: {
    code: 250,
    enhanced: '2.1.5',
    when: 'bounces+<outbox id>.<mac>@ with a valid MAC: a delivery report about a notification we sent',
  },
  RCPT_BAD_BOUNCE: {
    code: 550,
    enhanced: '5.1.1',
    when: 'bounces@ or bounces+…@ that we did not make (no MAC, a wrong one, or another form)',
  },
  RCPT_BOUNCE_MIXED: {
    code: 452,
    enhanced: '4.5.3',
    when:
      'a bounces+…@ address and another recipient we would accept in one transaction: a delivery report goes ' +
      'alone, the sender sends the rest in a transaction of its own (one refused for its own reason gets its 550)',
  },
  RCPT_RELAY_DENIED: { code: 550, enhanced: '5.7.1', when: 'recipient domain is not in MAIL_DOMAINS' },
  RCPT_NO_SUCH_MAILBOX: {
    code: 550,
    enhanced: '5.1.1',
    when: 'local part is not support, support+<tag>, postmaster or abuse',
  },
  RCPT_BAD_TAG: { code: 550, enhanced: '5.1.1', when: 'support+<tag> where the tag is not TKT-<digits>' },
  RCPT_UNKNOWN_TICKET: { code: 550, enhanced: '5.1.1', when: 'the tag names a ticket that does not exist' },
  RCPT_TICKET_CLOSED: {
    code: 550,
    enhanced: '5.1.1',
    when: 'the ticket exists but its status is one of TICKET_CLOSED_STATUSES (closed in ticket-mx or in the CRM)',
  },
  RCPT_TEMPFAIL: { code: 451, enhanced: '4.3.0', when: 'database trouble or our deadline while deciding a recipient' },
  RCPT_BAD_SIGNATURE: {
    code: 550,
    enhanced: '5.1.1',
    when: 'signed reply addresses are on and the MAC of support+TKT-1.<mac>@ is wrong',
  },
  RCPT_UNSIGNED: {
    code: 550,
    enhanced: '5.1.1',
    when: 'signed reply addresses are on, the address has no MAC and REPLY_ADDRESS_UNSIGNED=refuse',
  },
  CONNECT_TOO_MANY: {
    code: 421,
    enhanced: '4.7.0',
    when: 'the client IP already has SMTP_MAX_CONNECTIONS_PER_IP connections open',
  },
  CONNECT_NETWORK_TOO_MANY: {
    code: 421,
    enhanced: '4.7.0',
    when: 'the client network (IPv4 /24, IPv6 /48) already has SMTP_MAX_CONNECTIONS_PER_NETWORK connections open',
  },
  CONNECT_RESERVED: {
    code: 421,
    enhanced: '4.7.0',
    when: 'the server is nearly full (SMTP_RESERVED_CLIENTS left) and the client network already has a connection',
  },
  SMTP_TOO_MANY_ERRORS: {
    code: 421,
    enhanced: '4.7.0',
    when: 'the session reached SMTP_HARD_ERROR_LIMIT refused commands; the connection is closed',
  },
  MAIL_FROM_RATE_LIMITED: {
    code: 450,
    enhanced: '4.7.1',
    when: 'the client IP started more than SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE transactions this minute',
  },
  DATA_COMMITTED: { code: 250, enhanced: '2.0.0', when: 'the message is committed in PostgreSQL' },
  DATA_NOT_A_REPLY: {
    code: 250,
    enhanced: '2.0.0',
    when: 'an auto-reply, bounce, loop or our own notification: recorded as unrouted mail with the reason, never posted to the ticket',
  },
  DATA_REPORT_RECORDED: {
    code: 250,
    enhanced: '2.0.0',
    when: 'mail to a bounces+…@ address: stored as unrouted mail; a report of failure marks that outbox row bounced',
  },
  DATA_NO_TICKET: {
    code: 550,
    enhanced: '5.1.1',
    when: 'mail to the bare support@ address with no ticket reference we know',
  },
  DATA_TICKET_CLOSED: {
    code: 550,
    enhanced: '5.1.1',
    when: 'mail to the bare support@ address whose ticket is closed (TICKET_CLOSED_STATUSES)',
  },
  DATA_UNPARSEABLE: {
    code: 550,
    enhanced: '5.6.0',
    when: "the MIME parser refused the message (its words are the log line's err), or nothing usable could be decoded: no text, no HTML that shows anything, no attachment",
  },
  DATA_TOO_MANY_PARTS: {
    code: 552,
    enhanced: '5.3.4',
    when: 'the message has more than 1000 MIME parts (the parser decodes no more; nested parts count)',
  },
  DATA_ATTACHMENTS_LIMIT: {
    code: 552,
    enhanced: '5.3.4',
    when: 'more than ATTACHMENT_MAX_COUNT attachments, or more than ATTACHMENT_MAX_BYTES of them',
  },
  DATA_TICKET_RATE_LIMITED: {
    code: 450,
    enhanced: '4.7.1',
    when: 'the ticket already accepted TICKET_MAX_MESSAGES_PER_HOUR messages from this author in the last hour (a mail loop?)',
  },
  DATA_DUPLICATE: {
    code: 250,
    enhanced: '2.0.0',
    when:
      'a retry of a message already committed for every recipient (same Message-ID, From, Date, Subject and body); ' +
      'no new row',
  },
  DATA_TOO_BIG: {
    code: 552,
    enhanced: '5.3.4',
    when: 'the message is larger than MAX_MESSAGE_BYTES (nothing past the cap is buffered)',
  },
  DATA_BUSY: {
    code: 421,
    enhanced: '4.3.1',
    when:
      'taking the message would pass SMTP_MAX_BUFFERED_BYTES held by all connections together; nothing stored, ' +
      'the session closed at once (not read to its final dot)',
  },
  DATA_BUSY_CLIENT: {
    code: 421,
    enhanced: '4.7.1',
    when:
      'the client (IPv4 address, IPv6 /64) already holds a quarter of SMTP_MAX_BUFFERED_BYTES (at least ' +
      'MAX_MESSAGE_BYTES) in messages still arriving; nothing of this one is kept or stored, the session closed at once',
  },
  DATA_BUSY_NETWORK: {
    code: 421,
    enhanced: '4.7.1',
    when:
      'the client network (IPv4 /24, IPv6 /48) already holds half of SMTP_MAX_BUFFERED_BYTES (at least ' +
      'MAX_MESSAGE_BYTES) in messages still arriving; nothing of this one is kept or stored, the session closed at once',
  },
  DATA_BUSY_RESERVED: {
    code: 421,
    enhanced: '4.7.1',
    when:
      'the last quarter of SMTP_MAX_BUFFERED_BYTES is kept for networks holding nothing, and the network of ' +
      'this message held bytes when it began; nothing stored, the session closed at once',
  },
  DATA_TEMPFAIL: {
    code: 451,
    enhanced: '4.3.0',
    when:
      'database error or pool timeout while storing; nothing is stored, unless the connection broke during the ' +
      'commit, and then the retry is recognised',
  },
  DATA_DEADLINE: {
    code: 451,
    enhanced: '4.3.0',
    when:
      'our deadline (HOOK_TIMEOUT_MS) passed while storing; the statement is cancelled, but if the commit was ' +
      'already done the message is stored and the retry is answered DATA_DUPLICATE',
  },
  DATA_AUTH_REJECTED: {
    code: 550,
    enhanced: '5.7.x',
    when: 'AUTH_POLICY=enforce and the author may not write to the ticket, or the message does not authenticate its From address, or a staff signature does not name the ticket, or only a subdomain of their domain authenticates staff, or a signature alone does not cover the fields that decide how the body is read (see Who may write to a ticket)',
  },
  DATA_AUTH_TEMPFAIL: {
    code: 451,
    enhanced: '4.7.x',
    when: 'AUTH_POLICY=enforce and a temporary DNS error kept the author from being authenticated',
  },
  DATA_BARE_NEWLINE: {
    code: 550,
    enhanced: '5.6.0',
    when: 'a line of the message ends in a bare LF or a bare CR, not CRLF (refused, not normalised)',
  },
  DATA_HEADER_LIMIT: {
    code: 550,
    enhanced: '5.6.0',
    when: 'the header block is over MAX_HEADER_BYTES or MAX_HEADER_LINES; checked before any parser',
  },
  DATA_DUPLICATE_HEADER: {
    code: 550,
    enhanced: '5.6.0',
    when: 'a field RFC 5322 allows once (From, Subject, Message-ID, Content-Type, X-Ticket-ID, …) appears twice',
  },
  DATA_TOO_COMPLEX: {
    code: 550,
    enhanced: '5.6.0',
    when: 'processing the message took more than PIPELINE_CPU_LIMIT_MS of CPU, or more than its worker’s memory; nothing stored',
  },
  DATA_OVERLOADED: {
    code: 451,
    enhanced: '4.3.1',
    when:
      'the message waited PIPELINE_QUEUE_TIMEOUT_MS for its turn to be processed (our load: a place in the budget, ' +
      'then a worker thread); nothing stored',
  },
  DATA_UNROUTED_TOO_BIG: {
    code: 552,
    enhanced: '5.3.4',
    when: 'mail that no ticket takes (postmaster@, auto-replies, bounces) is larger than UNROUTED_MAX_MESSAGE_BYTES',
  },
  DATA_UNROUTED_QUOTA: {
    code: 450,
    enhanced: '4.7.1',
    when: 'the client network already had UNROUTED_MAX_BYTES_PER_NETWORK_PER_DAY of unrouted mail stored today',
  },
  DATA_UNROUTED_FULL: {
    code: 452,
    enhanced: '4.3.1',
    when: 'all networks together already had UNROUTED_MAX_BYTES_PER_DAY of unrouted mail stored today',
  },
  DATA_ABORTED: { code: 0, enhanced: '', when: 'the client went away during DATA; nothing stored' },
  SMTP_SHUTTING_DOWN: {
    code: 421,
    enhanced: '4.3.2',
    when:
      'we are stopping: an idle session at once, a session in DATA right after the reply to its message, one still ' +
      'sending its message when the wait (HOOK_TIMEOUT_MS + 5 s) is over then',
  },
} as const satisfies Record<string, CatalogueEntry>;

export type LogCode = keyof typeof CATALOGUE;

export class SmtpReply {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
  constructor(
    readonly logCode: LogCode,
    text: string,
    /** Only for catalogue entries whose enhanced code is a family (5.7.x): the exact code. */
    enhanced?: string,
  ) {
    this.code = CATALOGUE[logCode].code;
    this.enhanced = enhanced ?? CATALOGUE[logCode].enhanced;
    // what the client sent is quoted in part by the factories below; this only holds the line to
    // its 512 octets whatever a factory builds (src/mail/reply-line.ts)
    this.text = fitReplyLine(this.enhanced ? `${this.code} ${this.enhanced}` : String(this.code), text);
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
  mailParameterUnknown: (name: string) =>
    new SmtpReply('MAIL_PARAMETER_UNKNOWN', `MAIL FROM parameter ${quote(name)} not recognized or not implemented`),
  rcptParameterUnknown: (name: string) =>
    new SmtpReply('RCPT_PARAMETER_UNKNOWN', `RCPT TO parameter ${quote(name)} not recognized or not implemented`),
  ticketRecipient: () => new SmtpReply('RCPT_TICKET', 'Accepted'),
  postmaster: () => new SmtpReply('RCPT_POSTMASTER', 'Accepted'),
  support: () => new SmtpReply('RCPT_SUPPORT', 'Accepted'),
  bounceRecipient: () => new SmtpReply('RCPT_BOUNCE', 'Accepted'),
  badBounceAddress: () => new SmtpReply('RCPT_BAD_BOUNCE', 'No such mailbox: not a bounce address of ours'),
  bounceMixed: () =>
    new SmtpReply(
      'RCPT_BOUNCE_MIXED',
      'A delivery report to a bounce address goes in a transaction of its own: send this recipient in another',
    ),
  reportRecorded: (id: string, what: string) =>
    new SmtpReply('DATA_REPORT_RECORDED', `Ok: ${quote(what)} recorded as ${id}`),
  notAReply: (id: string, kind: string) =>
    new SmtpReply('DATA_NOT_A_REPLY', `Ok: ${kind} recorded as ${id}, not posted to the ticket`),
  noTicket: () =>
    new SmtpReply(
      'DATA_NO_TICKET',
      'No ticket reference found: reply to the notification, or write to support+TKT-<number>@',
    ),
  // the parser's own words go to the log only: some of them quote the message (a charset's name)
  unparseable: (parser: boolean) =>
    new SmtpReply(
      'DATA_UNPARSEABLE',
      parser
        ? 'Message could not be decoded: its MIME structure is broken'
        : 'Message could not be decoded: no text, HTML or attachment found',
    ),
  tooManyParts: (limit: number) =>
    new SmtpReply('DATA_TOO_MANY_PARTS', `Message has more than ${limit} MIME parts, more than the limit of ${limit}`),
  attachmentsLimit: (why: string) => new SmtpReply('DATA_ATTACHMENTS_LIMIT', why),
  ticketRateLimited: (ticketId: string, limit: number) =>
    new SmtpReply(
      'DATA_TICKET_RATE_LIMITED',
      `Ticket ${quote(ticketId)} already received ${limit} messages from you in the last hour, try again later`,
    ),
  relayDenied: (domain: string) =>
    new SmtpReply('RCPT_RELAY_DENIED', `Relaying denied: we do not accept mail for ${quote(domain)}`),
  noSuchMailbox: (address: string) =>
    new SmtpReply('RCPT_NO_SUCH_MAILBOX', `No such mailbox <${quote(address)}>; replies go to support+TKT-<number>@`),
  badTag: (tag: string) =>
    new SmtpReply('RCPT_BAD_TAG', `No such mailbox: "${quote(tag)}" is not a ticket reference (expected TKT-<number>)`),
  noSuchTicket: (ticketId: string) => new SmtpReply('RCPT_UNKNOWN_TICKET', `No such ticket ${quote(ticketId)}`),
  ticketClosed: (ticketId: string) =>
    new SmtpReply('RCPT_TICKET_CLOSED', `Ticket ${quote(ticketId)} is closed and takes no more replies`),
  supportTicketClosed: (ticketId: string) =>
    new SmtpReply('DATA_TICKET_CLOSED', `Ticket ${quote(ticketId)} is closed and takes no more replies`),
  rcptTempfail: (tag: string) =>
    new SmtpReply('RCPT_TEMPFAIL', `Temporary local problem, please try again later [${tag}]`),
  committed: (id: string) => new SmtpReply('DATA_COMMITTED', `Ok: committed as ${id}`),
  duplicate: (id: string) => new SmtpReply('DATA_DUPLICATE', `Ok: already committed as ${id}`),
  badSignature: () => new SmtpReply('RCPT_BAD_SIGNATURE', 'No such mailbox: the reply address signature is not valid'),
  unsigned: () =>
    new SmtpReply(
      'RCPT_UNSIGNED',
      'No such mailbox: this reply address must be signed; reply to the address in the notification',
    ),
  tooManyConnections: (limit: number) =>
    new SmtpReply('CONNECT_TOO_MANY', `Too many connections from your address (limit ${limit}), try again later`),
  tooManyFromNetwork: (limit: number) =>
    new SmtpReply(
      'CONNECT_NETWORK_TOO_MANY',
      `Too many connections from your network (limit ${limit}), try again later`,
    ),
  reservedForOthers: () =>
    new SmtpReply(
      'CONNECT_RESERVED',
      'The server is nearly full and keeps the rest for other networks, try again later',
    ),
  tooManyErrors: () => new SmtpReply('SMTP_TOO_MANY_ERRORS', 'Too many errors in this session, closing connection'),
  rateLimited: (limit: number) =>
    new SmtpReply(
      'MAIL_FROM_RATE_LIMITED',
      `Too many messages from your address (limit ${limit} a minute), slow down and try again later`,
    ),
  authRejected: (r: AuthReply) => new SmtpReply('DATA_AUTH_REJECTED', r.text, r.enhanced),
  authTempfail: (r: AuthReply) => new SmtpReply('DATA_AUTH_TEMPFAIL', r.text, r.enhanced),
  busy: () => new SmtpReply('DATA_BUSY', 'Insufficient system storage right now, please try again later'),
  busyClient: (limit: number) =>
    new SmtpReply(
      'DATA_BUSY_CLIENT',
      `Too many message bytes arriving from your address at once (limit ${limit}), message not stored, try again later`,
    ),
  busyNetwork: (limit: number) =>
    new SmtpReply(
      'DATA_BUSY_NETWORK',
      `Too many message bytes arriving from your network at once (limit ${limit}), message not stored, try again later`,
    ),
  busyReserved: () =>
    new SmtpReply(
      'DATA_BUSY_RESERVED',
      'The server is nearly full and keeps the rest for other networks, message not stored, try again later',
    ),
  tooBig: (limit: number) => new SmtpReply('DATA_TOO_BIG', `Message exceeds the maximum size of ${limit} bytes`),
  bareNewline: (which: 'LF' | 'CR') =>
    new SmtpReply(
      'DATA_BARE_NEWLINE',
      `Message has a bare ${which} line ending; every line must end in CRLF (RFC 5321 2.3.8)`,
    ),
  headerLimit: (what: 'bytes' | 'lines', limit: number) =>
    new SmtpReply('DATA_HEADER_LIMIT', `Message header block is over ${limit} ${what}`),
  duplicateHeader: (field: string, count: number) =>
    new SmtpReply(
      'DATA_DUPLICATE_HEADER',
      `Message has ${count} ${displayName(field)} header fields; RFC 5322 3.6 allows one`,
    ),
  tooComplex: () =>
    new SmtpReply('DATA_TOO_COMPLEX', 'Message too complex to process within its budget; it will not fit on a retry'),
  overloaded: () =>
    new SmtpReply('DATA_OVERLOADED', 'Too many messages in progress right now, message not stored, try again later'),
  unroutedTooBig: (limit: number) =>
    new SmtpReply(
      'DATA_UNROUTED_TOO_BIG',
      `Message exceeds the maximum size of ${limit} bytes for mail that is not a ticket reply`,
    ),
  unroutedQuota: (limit: number) =>
    new SmtpReply(
      'DATA_UNROUTED_QUOTA',
      `Your network sent more than ${limit} bytes of mail that is not a ticket reply today, try again tomorrow`,
    ),
  unroutedFull: (limit: number) =>
    new SmtpReply(
      'DATA_UNROUTED_FULL',
      `We already keep ${limit} bytes of mail that is not a ticket reply from today, try again tomorrow`,
    ),
  dataTempfail: (tag: string) =>
    new SmtpReply('DATA_TEMPFAIL', `Temporary local problem, please try again later [${tag}]`),
  // The statement is cancelled when the deadline fires, but a commit already under way cannot be:
  // the words must not promise that nothing was stored.
  dataDeadline: () =>
    new SmtpReply(
      'DATA_DEADLINE',
      'Temporary local problem: the message may have been stored; a retry is recognised [DEADLINE]',
    ),
  shuttingDown: (hostname: string) =>
    new SmtpReply('SMTP_SHUTTING_DOWN', `${hostname} Service shutting down, please try again later`),
};

/** `message-id` → `Message-ID`, as the field is usually written. */
function displayName(field: string): string {
  if (field === 'message-id') return 'Message-ID';
  if (field === 'mime-version') return 'MIME-Version';
  if (field === 'x-ticket-id') return 'X-Ticket-ID';
  return field.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}
