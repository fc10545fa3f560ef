// Every SQL statement ticket-mx runs, one named function each, always parameterised.
// The CRM may own `tickets`: findTicket is the one place the receiver reads it.
import type { Db } from './pool.js';

export interface Ticket {
  id: string;
  subject: string;
  requester: string;
  status: string;
  createdAt: Date;
}

export interface Envelope {
  clientIp: string;
  clientHostname: string | null;
  helo: string | null;
  mailFrom: string | null;
  rcptTo: string[];
  tls: boolean;
  tlsCipher: string | null;
}

export interface TicketMessageRow {
  ticketId: string;
  rawMessageId: string;
  idempotencyKey: string;
  authorAddress: string | null;
  authorName: string | null;
  authorRole: string | null;
  subject: string | null;
  replyText: string;
  fullText: string;
  removedText: string;
  html: string | null;
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
  sentAt: Date | null;
  envelope: Envelope;
  authResults: unknown;
  authHeader: string | null;
  authVerdict: string | null;
  authReason: string | null;
}

export interface UnroutedMessageRow {
  rawMessageId: string;
  recipient: string;
  ticketId: string | null;
  reason: string;
  idempotencyKey: string;
  fromAddress: string | null;
  subject: string | null;
  messageId: string | null;
  envelope: Envelope;
}

const TICKET_COLUMNS = 'id, subject, requester, status, created_at as "createdAt"';

export async function findTicket(db: Db, id: string): Promise<Ticket | null> {
  const { rows } = await db.query<Ticket>({ name: 'find_ticket', text: `select ${TICKET_COLUMNS} from tickets where id = $1`, values: [id] });
  return rows[0] ?? null;
}

export async function insertTicket(db: Db, ticket: { id?: string; subject: string; requester: string }): Promise<Ticket> {
  if (ticket.id) {
    const { rows } = await db.query<Ticket>(`insert into tickets (id, subject, requester) values ($1, $2, $3) returning ${TICKET_COLUMNS}`, [ticket.id, ticket.subject, ticket.requester]);
    return rows[0]!;
  }
  // The CRM may have created ids of its own: skip numbers already taken.
  const { rows } = await db.query<Ticket>(
    `with next as (
       select 'TKT-' || n as id from (select nextval('ticket_number_seq') as n) s
     )
     insert into tickets (id, subject, requester)
     select id, $1, $2 from next
     on conflict (id) do nothing
     returning ${TICKET_COLUMNS}`,
    [ticket.subject, ticket.requester],
  );
  return rows[0] ?? insertTicket(db, ticket);
}

export async function insertRawMessage(db: Db, raw: { bytes: Buffer; sha256: Buffer }): Promise<string> {
  const { rows } = await db.query<{ id: string }>({
    name: 'insert_raw_message',
    text: 'insert into raw_messages (sha256, size, bytes) values ($1, $2, $3) returning id',
    values: [raw.sha256, raw.bytes.length, raw.bytes],
  });
  return rows[0]!.id;
}

/** Null when this (ticket, idempotency key) is already stored: a retry of a committed message. */
export async function insertTicketMessage(db: Db, m: TicketMessageRow): Promise<string | null> {
  const e = m.envelope;
  const { rows } = await db.query<{ id: string }>({
    name: 'insert_ticket_message',
    text: `insert into ticket_messages (
        ticket_id, raw_message_id, idempotency_key, author_address, author_name, author_role,
        subject, reply_text, full_text, removed_text, html, message_id, in_reply_to, "references", sent_at,
        client_ip, client_hostname, helo, mail_from, rcpt_to, tls, tls_cipher,
        auth_results, auth_header, auth_verdict, auth_reason)
      values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)
      on conflict (ticket_id, idempotency_key) do nothing
      returning id`,
    values: [
      m.ticketId, m.rawMessageId, m.idempotencyKey, m.authorAddress, m.authorName, m.authorRole,
      m.subject, m.replyText, m.fullText, m.removedText, m.html, m.messageId, m.inReplyTo, m.references, m.sentAt,
      e.clientIp, e.clientHostname, e.helo, e.mailFrom, e.rcptTo, e.tls, e.tlsCipher,
      m.authResults === undefined ? null : JSON.stringify(m.authResults), m.authHeader, m.authVerdict, m.authReason,
    ],
  });
  return rows[0]?.id ?? null;
}

/** The raw message id a duplicate was first stored under, for the 250 reply. */
export async function findTicketMessageByKey(db: Db, ticketId: string, idempotencyKey: string): Promise<{ id: string; rawMessageId: string } | null> {
  const { rows } = await db.query<{ id: string; rawMessageId: string }>({
    name: 'find_ticket_message_by_key',
    text: 'select id, raw_message_id as "rawMessageId" from ticket_messages where ticket_id = $1 and idempotency_key = $2',
    values: [ticketId, idempotencyKey],
  });
  return rows[0] ?? null;
}

export async function insertUnroutedMessage(db: Db, m: UnroutedMessageRow): Promise<string | null> {
  const e = m.envelope;
  const { rows } = await db.query<{ id: string }>({
    name: 'insert_unrouted_message',
    text: `insert into unrouted_messages (raw_message_id, recipient, ticket_id, reason, idempotency_key,
        from_address, subject, message_id, client_ip, helo, mail_from)
      values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
      on conflict (recipient, idempotency_key) do nothing
      returning id`,
    values: [m.rawMessageId, m.recipient, m.ticketId, m.reason, m.idempotencyKey, m.fromAddress, m.subject, m.messageId, e.clientIp, e.helo, e.mailFrom],
  });
  return rows[0]?.id ?? null;
}

/** Delivered to LISTENers when the transaction commits, never before. */
export async function notifyTicketMessage(db: Db, ticketId: string, ticketMessageId: string): Promise<void> {
  await db.query({ name: 'notify_ticket_message', text: `select pg_notify('ticket_message', $1)`, values: [JSON.stringify({ ticket: ticketId, id: ticketMessageId })] });
}

export interface StoredTicketMessage {
  id: string;
  ticketId: string;
  rawMessageId: string;
  authorAddress: string | null;
  authorName: string | null;
  authorRole: string | null;
  subject: string | null;
  replyText: string;
  fullText: string;
  removedText: string;
  html: string | null;
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
  sentAt: Date | null;
  clientIp: string | null;
  clientHostname: string | null;
  helo: string | null;
  mailFrom: string | null;
  rcptTo: string[];
  tls: boolean;
  tlsCipher: string | null;
  authResults: unknown;
  authHeader: string | null;
  authVerdict: string | null;
  authReason: string | null;
  receivedAt: Date;
}

export async function listTicketMessages(db: Db, ticketId: string): Promise<StoredTicketMessage[]> {
  const { rows } = await db.query<StoredTicketMessage>(
    `select id, ticket_id as "ticketId", raw_message_id as "rawMessageId", author_address as "authorAddress",
        author_name as "authorName", author_role as "authorRole", subject, reply_text as "replyText",
        full_text as "fullText", removed_text as "removedText", html, message_id as "messageId",
        in_reply_to as "inReplyTo", "references", sent_at as "sentAt", host(client_ip) as "clientIp",
        client_hostname as "clientHostname", helo, mail_from as "mailFrom", rcpt_to as "rcptTo", tls,
        tls_cipher as "tlsCipher", auth_results as "authResults", auth_header as "authHeader",
        auth_verdict as "authVerdict", auth_reason as "authReason", received_at as "receivedAt"
     from ticket_messages where ticket_id = $1 order by received_at, id`,
    [ticketId],
  );
  return rows;
}

export async function countRows(db: Db): Promise<{ rawMessages: number; ticketMessages: number; unroutedMessages: number }> {
  const { rows } = await db.query<{ raw: string; tm: string; um: string }>(
    'select (select count(*) from raw_messages) as raw, (select count(*) from ticket_messages) as tm, (select count(*) from unrouted_messages) as um',
  );
  const r = rows[0]!;
  return { rawMessages: Number(r.raw), ticketMessages: Number(r.tm), unroutedMessages: Number(r.um) };
}

export async function ping(db: Db): Promise<void> {
  await db.query('select 1');
}
