// What other code calls to write to a ticket from outside SMTP (`ticket create`, the HTTP API of
// issue 8), each inside the caller's transaction: a ticket with its first message and the staff
// notification; a staff answer typed into the CRM with its mail to the requester. Nothing here
// commits: the caller's COMMIT makes the rows, the outbox entries and the NOTIFY real together.
import crypto from 'node:crypto';
import { queueOutbox } from '../db/outbox.js';
import type { Db } from '../db/pool.js';
import { findTicket, insertTicket, insertTicketMessage, type MessageSource, type Ticket } from '../db/queries.js';
import { type NotifyRules, notificationsFor, ticketCreatedNotifications, webhookFor } from './notify.js';

type TypedSource = Exclude<MessageSource, 'smtp'>;

export interface NewTicket {
  /** A fixed id (TKT-123); default: the next free number. */
  id?: string;
  subject: string;
  requester: string;
  /** The first message, written by the requester (e.g. what they said on the phone). */
  message?: { text: string; html?: string | null };
  source: TypedSource;
}

export interface CreatedTicket {
  ticket: Ticket;
  /** The first message's id, when there was one. */
  messageId: string | null;
  outboxIds: string[];
}

/** Inserts the ticket and its first message and queues "ticket created" for staff (and the first message's webhook), in tx. */
export async function createTicketWithMessage(tx: Db, t: NewTicket, rules: NotifyRules): Promise<CreatedTicket> {
  const ticket = await insertTicket(tx, { id: t.id, subject: t.subject, requester: t.requester.toLowerCase() });
  const messageId = t.message
    ? await insertTicketMessage(tx, {
        ticketId: ticket.id,
        idempotencyKey: `${t.source}:first`,
        source: t.source,
        authorAddress: ticket.requester,
        authorName: null,
        authorRole: 'requester',
        subject: ticket.subject,
        text: t.message.text,
        html: t.message.html ?? null,
      })
    : null;
  const rows = [...ticketCreatedNotifications(ticket, rules), ...(messageId ? webhookFor(ticket.id, rules) : [])].map(
    (r) => ({ ...r, ticketMessageId: messageId }),
  );
  return { ticket, messageId, outboxIds: await queueOutbox(tx, rows) };
}

export interface StaffAnswer {
  ticketId: string;
  author: { address: string; name?: string | null };
  text: string;
  html?: string | null;
  subject?: string | null;
  /** The same key twice stores (and mails) the answer once: give the CRM's request id. Default: random. */
  idempotencyKey?: string;
  source: TypedSource;
}

export class NoSuchTicket extends Error {
  override name = 'NoSuchTicket';
}

/**
 * Stores an answer staff typed (role staff: the caller vouches for the author) and queues its mail
 * to the requester, threaded like a mail reply. `messageId` is null when the key was used before.
 */
export async function storeStaffAnswer(
  tx: Db,
  a: StaffAnswer,
  rules: NotifyRules,
): Promise<{ messageId: string | null; outboxIds: string[] }> {
  const ticket = await findTicket(tx, a.ticketId);
  if (!ticket) throw new NoSuchTicket(`no such ticket ${a.ticketId}`);
  const author = a.author.address.toLowerCase();
  const messageId = await insertTicketMessage(tx, {
    ticketId: ticket.id,
    idempotencyKey: `${a.source}:${a.idempotencyKey ?? crypto.randomUUID()}`,
    source: a.source,
    authorAddress: author,
    authorName: a.author.name ?? null,
    authorRole: 'staff',
    subject: a.subject ?? null,
    text: a.text,
    html: a.html ?? null,
  });
  if (!messageId) return { messageId: null, outboxIds: [] };
  const rows = notificationsFor(
    [{ ticketId: ticket.id, authorAddress: author, authorRole: 'staff', trusted: true }],
    [ticket],
    rules,
  ).map((r) => ({ ...r, ticketMessageId: messageId }));
  return { messageId, outboxIds: await queueOutbox(tx, rows) };
}
