// The JSON of a ticket, its messages and its outbox rows — one shape for `ticket show --json`,
// `outbox list --json`, GET /v1/tickets/{id}, the polling endpoint and the CRM webhook — as zod
// schemas (the OpenAPI document is generated from them) and the one serializer that fills them.
import { z } from 'zod';
import { listTicketOutboxBounded, OUTBOX_STATUSES, type OutboxRow } from '../db/outbox.js';
import type { Db } from '../db/pool.js';
import {
  type BoundedTicketMessage,
  type ListedRefusal,
  listAttachments,
  listRefusalsBounded,
  listTicketMessagesBounded,
  type MessageBounds,
  type RowBounds,
  type StoredAttachment,
  TEXT_FIELDS,
  type Ticket,
} from '../db/queries.js';
import { LIST_BYTES, PAGE_ROWS, TEXT_PREVIEW_CHARS } from './limits.js';

export const TicketJson = z
  .object({
    id: z.string().meta({ example: 'TKT-12345' }),
    subject: z.string(),
    requester: z.string().describe("the customer's address: who may write to the ticket, and who gets staff answers"),
    status: z.string().describe('as stored (or as the CRM view maps it); TICKET_CLOSED_STATUSES take no more mail'),
    createdAt: z.iso.datetime(),
  })
  .meta({ id: 'Ticket' });

export const AttachmentJson = z
  .object({
    id: z.string(),
    filename: z.string().nullable(),
    contentType: z.string(),
    size: z.number().int(),
    sha256: z.string().describe('hex'),
    contentId: z.string().nullable(),
    inline: z.boolean(),
  })
  .meta({ id: 'Attachment' });

export const ForwardedJson = z
  .object({
    from: z.string().nullable(),
    date: z.string().nullable().describe('as written in the forward'),
    subject: z.string().nullable(),
    to: z.string().nullable(),
    text: z.string(),
  })
  .meta({ id: 'Forwarded' });

export const MessageJson = z
  .object({
    id: z.string().describe('the ticket message id (ticket_messages_v1.id), increasing; a decimal string'),
    from: z.string().nullable().describe('the author address'),
    fromName: z.string().nullable(),
    role: z.string().nullable().describe('staff, requester or stranger (a third party: neither of the others)'),
    subject: z.string().nullable(),
    text: z.string().describe('the reply text: quotes, attribution lines and signatures removed'),
    forwarded: ForwardedJson.nullable().describe('a message the author forwarded, kept beside their note'),
    fullText: z.string().optional().describe('with full=true: the whole text, quotes included'),
    removedText: z.string().optional().describe('with full=true: what was removed from the reply text'),
    html: z.string().nullable().optional().describe('with full=true: the sanitized HTML'),
    receivedAt: z.iso.datetime().describe('when it was committed'),
    sentAt: z.iso.datetime().nullable().describe('the Date: header'),
    messageId: z.string().nullable(),
    inReplyTo: z.string().nullable(),
    references: z.array(z.string()),
    envelope: z.object({
      clientIp: z.string().nullable(),
      helo: z.string().nullable(),
      mailFrom: z.string().nullable(),
      rcptTo: z.array(z.string()),
      tls: z.boolean(),
      tlsCipher: z.string().nullable(),
    }),
    auth: z.object({
      verdict: z
        .string()
        .nullable()
        .describe('AUTH_ACCEPTED, AUTH_NOT_ALLOWED, AUTH_UNAUTHENTICATED, AUTH_NOT_BOUND, …'),
      reason: z.string().nullable(),
      results: z.unknown().describe('SPF, DKIM, DMARC and ARC verdicts as stored'),
      header: z.string().nullable(),
    }),
    rawMessageId: z.string().nullable().describe('the mail as received; null for a message typed in (cli, api)'),
    source: z.enum(['smtp', 'cli', 'api']).describe('smtp: a mail; cli: ticket create/reply; api: the HTTP API'),
    attachments: z.array(AttachmentJson),
    truncated: z
      .array(z.enum(TEXT_FIELDS))
      .optional()
      .describe(
        `the long texts and header fields cut at ${TEXT_PREVIEW_CHARS} characters (forwardedText is ` +
          'forwarded.text, forwardedFrom forwarded.from and so on; from and fromName are the author; references ' +
          'keeps the ids that fit whole); ' +
          'GET /v1/tickets/{id}/messages/{messageId}/{field} gives each whole, piece by piece',
      ),
  })
  .meta({ id: 'Message' });

export const OutboxRowJson = z
  .object({
    id: z.string(),
    kind: z.string().describe('mail or webhook'),
    event: z
      .string()
      .describe(
        'ticket_created, staff_reply, requester_reply, stranger_reply (a third party: neither the requester nor ' +
          'authenticated staff), ticket_message.created',
      ),
    ticket: z.string().nullable(),
    ticketMessageId: z.string().nullable(),
    to: z.string().describe('a mail address, or the webhook URL'),
    status: z.enum(OUTBOX_STATUSES as [string, ...string[]]),
    attempts: z.number().int(),
    lastReply: z.string().nullable().describe("the remote side's last answer"),
    createdAt: z.iso.datetime(),
    nextAttemptAt: z.iso.datetime(),
    lastAttemptAt: z.iso.datetime().nullable(),
    sentAt: z.iso.datetime().nullable(),
    messageId: z.string().nullable().describe("a mail's Message-ID"),
  })
  .meta({ id: 'OutboxRow' });

export const RefusalJson = z
  .object({
    id: z.string().describe('the `after` of GET /v1/tickets/{id}/refused'),
    refusedAt: z.iso.datetime(),
    code: z.string().describe('the log code of the refusal (DATA_AUTH_REJECTED, …)'),
    reply: z.string().describe('the SMTP reply the sender got'),
    reason: z.string().nullable(),
    fromAddress: z.string().nullable(),
    messageId: z.string().nullable(),
    clientIp: z.string().nullable(),
  })
  .meta({ id: 'Refusal' });

export const TicketWithMessagesJson = z
  .object({
    ticket: TicketJson,
    messages: z.array(MessageJson),
    notifications: z
      .array(OutboxRowJson)
      .describe(
        `what the ticket queued: mail and webhooks, with their status, by id; at most ${PAGE_ROWS} rows and ` +
          `${LIST_BYTES} bytes`,
      ),
    refused: z
      .array(RefusalJson)
      .describe(
        'mail to the ticket refused at DATA, why (at most 20 an hour are kept), oldest first; at most ' +
          `${PAGE_ROWS} and ${LIST_BYTES} bytes`,
      ),
    messagesMore: z
      .boolean()
      .describe(
        'true when the size cap cut `messages`: the rest from GET /v1/tickets/{id}/messages?after=<messagesNext>',
      ),
    messagesNext: z.string().describe('the id of the last message returned (0 when none)'),
    notificationsMore: z
      .boolean()
      .describe(
        'true when a cap cut `notifications`: the rest from ' +
          'GET /v1/tickets/{id}/notifications?after=<notificationsNext>',
      ),
    notificationsNext: z.string().describe('the id of the last notification returned (0 when none)'),
    refusedMore: z
      .boolean()
      .describe('true when a cap cut `refused`: the rest from GET /v1/tickets/{id}/refused?after=<refusedNext>'),
    refusedNext: z.string().describe('the id of the last refusal returned (0 when none)'),
  })
  .meta({ id: 'TicketWithMessages' });

export type TicketJson = z.infer<typeof TicketJson>;
export type RefusalJson = z.infer<typeof RefusalJson>;
export type MessageJson = z.infer<typeof MessageJson>;

export const ticketJson = (t: Ticket): TicketJson => ({
  id: t.id,
  subject: t.subject,
  requester: t.requester,
  status: t.status,
  createdAt: t.createdAt.toISOString(),
});

export function messageJson(m: BoundedTicketMessage, attachments: StoredAttachment[], full: boolean): MessageJson {
  return {
    id: m.id,
    from: m.authorAddress,
    fromName: m.authorName,
    role: m.authorRole,
    subject: m.subject,
    text: m.replyText,
    forwarded: m.forwarded ?? null,
    ...(full ? { fullText: m.fullText, removedText: m.removedText, html: m.html } : {}),
    receivedAt: m.receivedAt.toISOString(),
    sentAt: m.sentAt?.toISOString() ?? null,
    messageId: m.messageId,
    inReplyTo: m.inReplyTo,
    references: m.references,
    envelope: {
      clientIp: m.clientIp,
      helo: m.helo,
      mailFrom: m.mailFrom,
      rcptTo: m.rcptTo,
      tls: m.tls,
      tlsCipher: m.tlsCipher,
    },
    auth: { verdict: m.authVerdict, reason: m.authReason, results: m.authResults, header: m.authHeader },
    rawMessageId: m.rawMessageId,
    source: m.source,
    attachments,
    truncated: m.truncated,
  };
}

export function outboxRowJson(r: OutboxRow): z.infer<typeof OutboxRowJson> {
  return {
    id: r.id,
    kind: r.kind,
    event: r.event,
    ticket: r.ticketId,
    ticketMessageId: r.ticketMessageId,
    to: r.recipient,
    status: r.status,
    attempts: r.attempts,
    lastReply: r.lastReply,
    createdAt: r.createdAt.toISOString(),
    nextAttemptAt: r.nextAttemptAt.toISOString(),
    lastAttemptAt: r.lastAttemptAt?.toISOString() ?? null,
    sentAt: r.sentAt?.toISOString() ?? null,
    messageId: (r.payload as { messageId?: string }).messageId ?? null,
  };
}

export const refusalJson = ({ ticketId: _ticket, id, refusedAt, ...r }: ListedRefusal): RefusalJson => ({
  id,
  refusedAt: refusedAt.toISOString(),
  ...r,
});

/** Stored messages with their attachments' metadata, serialized. */
export async function messagesJson(db: Db, messages: BoundedTicketMessage[], full: boolean): Promise<MessageJson[]> {
  const attachments = await listAttachments(
    db,
    messages.flatMap((m) => (m.rawMessageId ? [m.rawMessageId] : [])),
  );
  return messages.map((m) => messageJson(m, (m.rawMessageId && attachments.get(m.rawMessageId)) || [], full));
}

/** No bound at all (`ticket show --json`): every message, outbox row and refusal, whole. */
export const UNBOUNDED: Omit<MessageBounds, 'full'> = {
  textChars: 2 ** 31 - 1,
  pageBytes: Number.MAX_SAFE_INTEGER,
  limit: 2 ** 31 - 1,
};
export const UNBOUNDED_ROWS: RowBounds = { limit: 2 ** 31 - 1, pageBytes: Number.MAX_SAFE_INTEGER };

/**
 * A ticket, its messages (by id; by received time with `byReceived`), its outbox rows and the mail
 * refused for it (`ticket show --json`; GET /v1/tickets/{id}, which passes the API's bounds of
 * src/api/limits.ts).
 */
export async function ticketDocument(
  db: Db,
  ticket: Ticket,
  full: boolean,
  bounds: Omit<MessageBounds, 'full'> = UNBOUNDED,
  rows: RowBounds = UNBOUNDED_ROWS,
): Promise<z.infer<typeof TicketWithMessagesJson>> {
  const page = await listTicketMessagesBounded(db, ticket.id, '0', { ...bounds, full });
  const outbox = await listTicketOutboxBounded(db, ticket.id, '0', rows);
  const refused = await listRefusalsBounded(db, ticket.id, '0', rows);
  return {
    ticket: ticketJson(ticket),
    messages: await messagesJson(db, page.messages, full),
    notifications: outbox.rows.map(outboxRowJson),
    refused: refused.refusals.map(refusalJson),
    messagesMore: page.more,
    messagesNext: page.messages.at(-1)?.id ?? '0',
    notificationsMore: outbox.more,
    notificationsNext: outbox.rows.at(-1)?.id ?? '0',
    refusedMore: refused.more,
    refusedNext: refused.refusals.at(-1)?.id ?? '0',
  };
}
