// Every SQL statement ticket-mx runs, one named function each, always parameterised, unqualified
// (every connection's search_path is our schema, src/db/schema.ts). The CRM may own `tickets` (a
// view over its table): findTicket is the one place the receiver reads it.
import { Pieces, queryPieces } from './bind.js';
import { type NewOutboxRow, outboxJson, outboxRecords } from './outbox.js';
import { type Db, isPool, withCancellation } from './pool.js';
import { ALL_NETWORKS, type UnroutedSpent } from './unrouted-budget.js';

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

/** A message the author forwarded, kept beside their note (reply text): who, when, what. */
export interface ForwardedMessage {
  from: string | null;
  date: string | null;
  subject: string | null;
  to: string | null;
  text: string;
}

export interface TicketMessageRow {
  ticketId: string;
  idempotencyKey: string;
  authorAddress: string | null;
  authorName: string | null;
  authorRole: string | null;
  subject: string | null;
  replyText: string;
  fullText: string;
  removedText: string;
  /** Optional for callers that predate forwards; stored as null when absent. */
  forwarded?: ForwardedMessage | null;
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

/** One ticket by its id: the statement the RCPT lookups share, with one id. */
export async function findTicket(db: Pick<Db, 'query'>, id: string): Promise<Ticket | null> {
  return (await findTickets(db, [id]))[0] ?? null;
}

/** The tickets of these ids that exist (one statement for the RCPT lookups asked together). */
export async function findTickets(db: Pick<Db, 'query'>, ids: string[]): Promise<Ticket[]> {
  const { rows } = await db.query<Ticket>({
    name: 'find_tickets',
    text: `select ${TICKET_COLUMNS} from tickets where id = any($1::text[])`,
    values: [ids],
  });
  return rows;
}

export async function insertTicket(
  db: Db,
  ticket: { id?: string; subject: string; requester: string },
): Promise<Ticket> {
  if (!(await ticketsAreOurs(db))) {
    // the CRM's tickets behind a view: its INSTEAD OF INSERT trigger (deploy/crm-view.sql) writes the
    // CRM's row and picks the number when no id is given
    const { rows } = await db.query<Ticket>(
      `insert into tickets (id, subject, requester) values ($1, $2, $3) returning ${TICKET_COLUMNS}`,
      [ticket.id ?? null, wellFormed(ticket.subject), wellFormed(ticket.requester)],
    );
    if (!rows[0]) throw new Error('the tickets view took the insert but returned no ticket');
    return rows[0];
  }
  return insertOwnTicket(db, ticket);
}

async function insertOwnTicket(db: Db, ticket: { id?: string; subject: string; requester: string }): Promise<Ticket> {
  if (ticket.id) {
    const { rows } = await db.query<Ticket>(
      `insert into tickets (id, subject, requester) values ($1, $2, $3) returning ${TICKET_COLUMNS}`,
      [ticket.id, wellFormed(ticket.subject), wellFormed(ticket.requester)],
    );
    return rows[0]!;
  }
  // Ids given with --id may have taken numbers: skip them.
  const { rows } = await db.query<Ticket>(
    `with next as (
       select 'TKT-' || n as id from (select nextval('ticket_number_seq') as n) s
     )
     insert into tickets (id, subject, requester)
     select id, $1, $2 from next
     on conflict (id) do nothing
     returning ${TICKET_COLUMNS}`,
    [wellFormed(ticket.subject), wellFormed(ticket.requester)],
  );
  return rows[0] ?? insertOwnTicket(db, ticket);
}

/** What PostgreSQL says when a view takes no insert or update (no INSTEAD OF trigger, not auto-updatable). */
const READ_ONLY_VIEW = new Set(['0A000', '55000']);

/** The error of a write to the CRM's tickets view that has no way to take it. */
export const isReadOnlyView = (err: unknown): boolean => READ_ONLY_VIEW.has((err as { code?: string })?.code ?? '');

/** True when `tickets` is our own table; false when an operator replaced it by a view (or a foreign table). */
export async function ticketsAreOurs(db: Db): Promise<boolean> {
  const { rows } = await db.query<{ kind: string | null }>(
    "select relkind::text as kind from pg_class where oid = to_regclass('tickets')",
  );
  return rows[0]?.kind === 'r' || rows[0]?.kind === 'p';
}

/** The newest tickets first, optionally of one status (compared without case), with their message counts. */
export async function listTickets(
  db: Db,
  filter: { status: string | null; limit: number },
): Promise<(Ticket & { messages: number; lastMessageAt: Date | null })[]> {
  const { rows } = await db.query<Ticket & { messages: number; lastMessageAt: Date | null }>(
    `select t.id, t.subject, t.requester, t.status, t.created_at as "createdAt",
            coalesce(m.n, 0)::int as messages, m.last as "lastMessageAt"
       from tickets t
       left join lateral (
         select count(*) as n, max(received_at) as last from ticket_messages where ticket_id = t.id
       ) m on true
      where $1::text is null or lower(t.status) = lower($1::text)
      order by t.created_at desc, t.id desc
      limit $2`,
    [filter.status, filter.limit],
  );
  return rows;
}

/** Sets a ticket's status (through the CRM's view, if that is what `tickets` is); null when there is no such ticket. */
export async function setTicketStatus(db: Db, id: string, status: string): Promise<Ticket | null> {
  const { rows } = await db.query<Ticket>(`update tickets set status = $2 where id = $1 returning ${TICKET_COLUMNS}`, [
    id,
    status,
  ]);
  return rows[0] ?? null;
}

export interface StoreResult {
  /** The new raw message's id; null when every row already existed (a retry) or a ticket is over its hourly cap. */
  rawMessageId: string | null;
  stored: number;
  /** For a retry: the raw message id the first copy was stored under. */
  existingRawMessageId: string | null;
  /** Set when nothing was stored because this message's author already has maxPerHour messages on this ticket from the last hour (migrations 0013, 0014). */
  rateLimitedTicket: string | null;
}

/** One attachment as stored (built from mailparser's by src/mail/attachments.ts). */
export interface AttachmentRow {
  /** Decoded (mailparser handles RFC 2231 and encoded words), no path, no control characters. */
  filename: string | null;
  contentType: string;
  size: number;
  sha256: Buffer;
  /** Without angle brackets: what a `cid:` URL in the HTML names. */
  contentId: string | null;
  /** Shown inside the HTML body through a `cid:` link, so a view need not list it separately. */
  inline: boolean;
  content: Buffer;
}

/** One message's bytes and rows, as store_message takes them (storeMessage; storeMessages for a group commit). */
export interface MessageToStore {
  bytes: Buffer;
  sha256: Buffer;
  ticketMessages: TicketMessageRow[];
  unrouted: UnroutedMessageRow[];
  attachments: AttachmentRow[];
  /** Deliveries keyed by ticketId: queued only for a ticket that got a new message row. */
  outbox: NewOutboxRow[];
}

/**
 * Everything of one message in one round trip and one transaction: raw bytes, ticket messages,
 * unrouted rows, NOTIFY on commit (store_message); with outbox rows, store_message_with_outbox
 * (the outbox migration) also queues the notifications of the ticket messages actually inserted.
 * Idempotent. With `signal`, the statement is cancelled when it aborts (the DATA deadline).
 */
export async function storeMessage(
  db: Db,
  m: Omit<MessageToStore, 'outbox'> & { maxPerHour: number; outbox?: NewOutboxRow[] },
  options: { signal?: AbortSignal } = {},
): Promise<StoreResult> {
  const run = (on: Db) => storeMessageOn(on, m);
  // a client inside a transaction of the caller's is the caller's to stop
  return options.signal && isPool(db) ? withCancellation(db, options.signal, run) : run(db);
}

async function storeMessageOn(db: Db, m: Parameters<typeof storeMessage>[1]): Promise<StoreResult> {
  const outbox = m.outbox ?? [];
  const { rows } = await db.query<StoreRow>({
    ...(outbox.length
      ? {
          name: 'store_message_with_outbox',
          text: `select raw_message_id, stored, existing_raw_message_id, rate_limited_ticket
                   from store_message_with_outbox($1, $2, $3, $4, $5, $6, $7, $8)`,
        }
      : {
          name: 'store_message',
          text: `select raw_message_id, stored, existing_raw_message_id, rate_limited_ticket
                   from store_message($1, $2, $3, $4, $5, $6, $7)`,
        }),
    values: [
      m.sha256,
      m.bytes,
      json(m.ticketMessages.map(ticketMessageJson)),
      json(m.unrouted.map(unroutedJson)),
      json(m.attachments.map(attachmentJson)),
      m.attachments.map((a) => a.content),
      m.maxPerHour,
      ...(outbox.length ? [outboxJson(outbox)] : []),
    ],
  });
  return storeResult(rows[0]!);
}

/** What store_message (and each message of store_messages) answers. */
interface StoreRow {
  raw_message_id: string | null;
  stored: number;
  existing_raw_message_id: string | null;
  rate_limited_ticket: string | null;
}

const storeResult = (r: StoreRow): StoreResult => ({
  rawMessageId: r.raw_message_id,
  stored: r.stored,
  existingRawMessageId: r.existing_raw_message_id,
  rateLimitedTicket: r.rate_limited_ticket,
});

/**
 * Several messages in one statement and one transaction (store_messages of the group-commit
 * migration), each as storeMessage would store it alone, in order; a result per message, in the
 * same order. Their bytes (raw and attachments) go as one binary parameter, not as hex text, and
 * are written to the socket as they are (bind.ts): never concatenated, never copied. The long texts
 * of their ticket messages go in it too, as UTF-8 (migration 0011), not inside the JSON: JSON writes
 * a control character as six bytes, and a 20 MB body of them made 120 MB of JSON for each text.
 */
export async function storeMessages(
  db: Db,
  messages: MessageToStore[],
  maxPerHour: number,
  options: { signal?: AbortSignal } = {},
): Promise<StoreResult[]> {
  const blobs: Buffer[] = [];
  let offset = 0;
  const part = (bytes: Buffer): [number, number] => {
    blobs.push(bytes);
    offset += bytes.length;
    return [offset - bytes.length, bytes.length];
  };
  const textPart = (s: string | null): [number, number] | null => (s === null ? null : part(textBytes(s)));
  const entries = messages.map((m) => ({
    sha256: m.sha256.toString('hex'),
    at: part(m.bytes),
    attachment_parts: m.attachments.map((a) => part(a.content)),
    ticket_messages: m.ticketMessages.map((t) => ({
      ...ticketMessageMeta(t),
      text_parts: {
        reply_text: textPart(t.replyText),
        full_text: textPart(t.fullText),
        removed_text: textPart(t.removedText),
        html: textPart(t.html),
      },
    })),
    unrouted: m.unrouted.map(unroutedJson),
    attachments: m.attachments.map(attachmentJson),
    outbox: outboxRecords(m.outbox),
  }));
  const run = async (on: Db) => {
    const { rows } = await queryPieces<StoreRow & { ord: number }>(on, {
      name: 'store_messages',
      text: `select ord, raw_message_id, stored, existing_raw_message_id, rate_limited_ticket
               from store_messages($1, $2, $3)`,
      // the bytes as they are, back to back: neither concatenated nor copied into the Bind message (bind.ts)
      values: [new Pieces(blobs), json(entries), maxPerHour],
    });
    if (rows.length !== messages.length)
      throw new Error(`store_messages gave ${rows.length} results for ${messages.length}`);
    return rows.sort((a, b) => a.ord - b.ord).map(storeResult);
  };
  return options.signal && isPool(db) ? withCancellation(db, options.signal, run) : run(db);
}

/** The ticket a notification we sent belongs to, for replies to the bare support@ address. */
export async function findTicketByNotification(db: Db, messageIds: string[]): Promise<Ticket | null> {
  if (!messageIds.length) return null;
  const { rows } = await db.query<Ticket>({
    name: 'find_ticket_by_notification',
    // the newest reference is the most specific: References lists the thread oldest first
    text: `select t.id, t.subject, t.requester, t.status, t.created_at as "createdAt"
             from unnest($1::text[]) with ordinality as r(id, ord)
             join notification_messages n on n.message_id = r.id
             join tickets t on t.id = n.ticket_id
            order by r.ord desc limit 1`,
    values: [texts(messageIds)],
  });
  return rows[0] ?? null;
}

/**
 * Adds a stored unrouted message's bytes to its network's count for today and to all networks'
 * (ALL_NETWORKS, src/db/unrouted-budget.ts), and returns the new totals; days before yesterday are let go on the way. Called
 * inside the message's transaction: a rollback charges nothing. The network's row is locked first,
 * then all's, in every transaction: no two wait for each other.
 */
export async function chargeUnroutedBytes(db: Db, network: string, bytes: number): Promise<UnroutedSpent> {
  await db.query({
    name: 'prune_unrouted_budget',
    text: 'delete from unrouted_budget where day < current_date - 1',
  });
  const { rows } = await db.query<{ network: string; bytes: string }>({
    name: 'charge_unrouted_budget',
    text: `insert into unrouted_budget (network, bytes) values ($1, $2), ($3, $2)
           on conflict (network, day) do update set bytes = unrouted_budget.bytes + excluded.bytes
           returning network, bytes`,
    values: [network, bytes, ALL_NETWORKS],
  });
  return spentOf(rows, network);
}

const spentOf = (rows: { network: string; bytes: string }[], network: string): UnroutedSpent => ({
  network: Number(rows.find((r) => r.network === network)?.bytes ?? 0),
  all: Number(rows.find((r) => r.network === ALL_NETWORKS)?.bytes ?? 0),
});

/** Bytes of unrouted mail stored today for this network and for all (0 when none). */
export async function unroutedBytesToday(db: Db, network: string): Promise<UnroutedSpent> {
  const { rows } = await db.query<{ network: string; bytes: string }>({
    name: 'unrouted_bytes_today',
    text: 'select network, bytes from unrouted_budget where network in ($1, $2) and day = current_date',
    values: [network, ALL_NETWORKS],
  });
  return spentOf(rows, network);
}

export interface RefusedMessage {
  ticketId: string;
  refusedAt?: Date;
  code: string;
  reply: string;
  reason: string | null;
  fromAddress: string | null;
  messageId: string | null;
  clientIp: string | null;
}

/**
 * At most this many refusals are recorded per ticket and hour: a flood of refused mail writes no more
 * (one process records a ticket's refusals one after another, src/pipeline/deliver.ts recordRefusals,
 * so that each count sees the rows before it; two processes side by side may still add a few).
 */
export const REFUSALS_PER_TICKET_PER_HOUR = 20;

/**
 * Characters kept of each text of a refusal: the From address and the Message-ID as the client sent
 * them, and the reply and reason, which may quote the From. A hostile header of up to
 * MAX_HEADER_BYTES makes no huge row.
 */
export const REFUSAL_FIELD_CHARS = 64 * 1024;

/** The first REFUSAL_FIELD_CHARS of a refusal's text, never half a surrogate pair. */
function refusalField(s: string | null): string | null {
  if (s === null) return null;
  const high = s.charCodeAt(REFUSAL_FIELD_CHARS - 1);
  return wellFormed(s.slice(0, high >= 0xd800 && high <= 0xdbff ? REFUSAL_FIELD_CHARS - 1 : REFUSAL_FIELD_CHARS));
}

/** Records why mail to a ticket was refused; nothing when the ticket already has its hour's share. */
export async function recordRefusal(db: Db, r: RefusedMessage): Promise<void> {
  await db.query({
    name: 'record_refusal',
    text: `insert into refused_messages (ticket_id, code, reply, reason, from_address, message_id, client_ip)
           select $1, $2, $3, $4, $5, $6, $7
            where (select count(*) from refused_messages
                    where ticket_id = $1 and refused_at > now() - interval '1 hour') < $8`,
    values: [
      r.ticketId,
      r.code,
      refusalField(r.reply),
      refusalField(r.reason),
      refusalField(r.fromAddress),
      refusalField(r.messageId),
      r.clientIp,
      REFUSALS_PER_TICKET_PER_HOUR,
    ],
  });
}

/** A refusal as the API lists it: with its id, the `after` of the next page. */
export type ListedRefusal = Required<RefusedMessage> & { id: string };

/**
 * The refusals of a ticket after the one with id `afterId` ('0': from the first), oldest first, at most
 * `limit` and `pageBytes` of JSON (one at least); `more` when one was left for the next page.
 */
export async function listRefusalsBounded(
  db: Db,
  ticketId: string,
  afterId: string,
  bounds: RowBounds,
): Promise<{ refusals: ListedRefusal[]; more: boolean }> {
  const { rows } = await db.query<SizedRow<ListedRefusal>>({
    name: 'list_refusals_bounded',
    text: sizedRows(
      `select id, ticket_id as "ticketId",
              refused_at as "refusedAt", code, reply, reason, from_address as "fromAddress",
              message_id as "messageId", host(client_ip) as "clientIp"
         from refused_messages
        where ticket_id = $1
          and (refused_at, id) > (coalesce((select refused_at from refused_messages where id = $2 and ticket_id = $1),
                                           '-infinity'), $2::bigint)
        order by refused_at, id limit $3::bigint + 1`,
      '"refusedAt", id',
      'octet_length(row_to_json(p)::text)',
      '$3::bigint',
      '$4::bigint',
    ),
    values: [ticketId, afterId, bounds.limit, bounds.pageBytes],
  });
  const page = sizedResult(rows);
  return { refusals: page.rows, more: page.more };
}

/** The refusals recorded for a ticket, oldest first. */
export async function listRefusals(db: Db, ticketId: string): Promise<Required<RefusedMessage>[]> {
  const { rows } = await db.query<Required<RefusedMessage>>(
    `select ticket_id as "ticketId", refused_at as "refusedAt", code, reply, reason, from_address as "fromAddress",
            message_id as "messageId", host(client_ip) as "clientIp"
       from refused_messages where ticket_id = $1 order by refused_at, id`,
    [ticketId],
  );
  return rows;
}

export interface StoredAttachment {
  id: string;
  filename: string | null;
  contentType: string;
  size: number;
  sha256: string;
  contentId: string | null;
  inline: boolean;
}

/** The attachments of these raw messages, by raw message id. */
export async function listAttachments(db: Db, rawMessageIds: string[]): Promise<Map<string, StoredAttachment[]>> {
  const { rows } = await db.query<StoredAttachment & { rawMessageId: string }>(
    `select id, raw_message_id as "rawMessageId", filename, content_type as "contentType", size,
            encode(sha256, 'hex') as sha256, content_id as "contentId", inline
       from attachments where raw_message_id = any($1::bigint[]) order by raw_message_id, position`,
    [rawMessageIds],
  );
  const byMessage = new Map<string, StoredAttachment[]>();
  for (const { rawMessageId, ...a } of rows) byMessage.set(rawMessageId, [...(byMessage.get(rawMessageId) ?? []), a]);
  return byMessage;
}

/** The files of one raw message that were attached (not inline in its HTML), with their bytes. */
export async function listAttachedFiles(
  db: Db,
  rawMessageId: string,
): Promise<{ filename: string | null; contentType: string; bytes: Buffer }[]> {
  const { rows } = await db.query<{ filename: string | null; contentType: string; bytes: Buffer }>({
    name: 'list_attached_files',
    text: `select filename, content_type as "contentType", bytes
             from attachments where raw_message_id = $1 and not inline order by position`,
    values: [rawMessageId],
  });
  return rows;
}

// PostgreSQL text and jsonb refuse NUL and lone UTF-16 surrogates, and mail can carry both (a NUL
// in a Content-Type, `=?utf-16be?B?2AA=?=` in a Subject): a value that always fails would be a
// 451 on every retry. Every string bound for the database passes through `wellFormed` here, in
// the JSON of the jsonb parameters and in the text parameters alike.
const NUL = /\u0000/g;
/**
 * NUL removed, lone surrogates replaced by U+FFFD: what PostgreSQL text can hold. toWellFormed copies
 * every two-byte string, well-formed or not (a 20 MB Cyrillic text: 40 MB more), so it is asked first.
 */
export const wellFormed = (s: string): string => {
  const text = s.includes('\u0000') ? s.replace(NUL, '') : s;
  return text.isWellFormed() ? text : text.toWellFormed();
};
/**
 * A long text as UTF-8 that PostgreSQL text can hold, made on the bytes: Buffer.from writes a lone
 * surrogate as U+FFFD (what toWellFormed gives), and NUL is the only character whose UTF-8 holds a
 * zero byte, so dropping the zero bytes drops the NULs. On the string, removing the NULs of a 20 MB
 * body of "a\0" pairs held the main thread 0.7-1.1 s and took it 320 MB more than a body of "a\x01"
 * pairs (attack run 5); on the bytes, one pass of a few tens of ms, in place.
 */
export const textBytes = (s: string): Buffer => {
  const bytes = Buffer.from(s);
  let w = bytes.indexOf(0);
  if (w < 0) return bytes;
  for (let r = w + 1; r < bytes.length; r++) if (bytes[r] !== 0) bytes[w++] = bytes[r]!;
  return bytes.subarray(0, w);
};
const wellFormedValue = (_key: string, value: unknown) => (typeof value === 'string' ? wellFormed(value) : value);
// JSON.stringify writes NUL as \u0000 and a lone surrogate as \udXXX (a pair stays raw UTF-16).
const ILL_FORMED_JSON = /\\u0000|\\ud[89a-f][0-9a-f]{2}/i;
/** JSON for a jsonb parameter; the (slow) replacer only runs when the text shows something to fix. */
export const json = (value: unknown): string => {
  const text = JSON.stringify(value);
  return ILL_FORMED_JSON.test(text) ? JSON.stringify(value, wellFormedValue) : text;
};
const texts = (values: string[]): string[] => values.map(wellFormed);
const nullable = (s: string | null | undefined): string | null => (s == null ? null : wellFormed(s));

function ticketMessageJson(m: TicketMessageRow) {
  return {
    ...ticketMessageMeta(m),
    reply_text: m.replyText,
    full_text: m.fullText,
    removed_text: m.removedText,
    html: m.html,
  };
}

/** A ticket message's row as store_message reads it but for its long texts (storeMessages sends those apart). */
function ticketMessageMeta(m: TicketMessageRow) {
  const e = m.envelope;
  return {
    ticket_id: m.ticketId,
    idempotency_key: m.idempotencyKey,
    author_address: m.authorAddress,
    author_name: m.authorName,
    author_role: m.authorRole,
    subject: m.subject,
    forwarded: m.forwarded ?? null,
    message_id: m.messageId,
    in_reply_to: m.inReplyTo,
    references: m.references,
    sent_at: m.sentAt,
    client_ip: e.clientIp,
    client_hostname: e.clientHostname,
    helo: e.helo,
    mail_from: e.mailFrom,
    rcpt_to: e.rcptTo,
    tls: e.tls,
    tls_cipher: e.tlsCipher,
    auth_results: m.authResults ?? null,
    auth_header: m.authHeader,
    auth_verdict: m.authVerdict,
    auth_reason: m.authReason,
  };
}

/** An attachment's row as store_message reads it (its content travels as a parameter of its own). */
function attachmentJson(a: AttachmentRow) {
  return {
    filename: a.filename,
    content_type: a.contentType,
    sha256: a.sha256.toString('hex'),
    content_id: a.contentId,
    inline: a.inline,
  };
}

function unroutedJson(m: UnroutedMessageRow) {
  const e = m.envelope;
  return {
    recipient: m.recipient,
    ticket_id: m.ticketId,
    reason: m.reason,
    idempotency_key: m.idempotencyKey,
    from_address: m.fromAddress,
    subject: m.subject,
    message_id: m.messageId,
    client_ip: e.clientIp,
    helo: e.helo,
    mail_from: e.mailFrom,
  };
}

/** A ticket message as read back: the row as written, the envelope flattened, plus ids and time. */
export type StoredTicketMessage = Omit<TicketMessageRow, 'envelope' | 'idempotencyKey'> &
  Omit<Envelope, 'clientIp'> & {
    id: string;
    /** null for a message that did not come over SMTP (source cli or api). */
    rawMessageId: string | null;
    source: MessageSource;
    clientIp: string | null;
    receivedAt: Date;
  };

/** Where a ticket message came from: a mail, `ticket create --message`, the HTTP API. */
export type MessageSource = 'smtp' | 'cli' | 'api';

/** Every column of a message but its long texts and its header fields (MESSAGE_HEADER_COLUMNS). */
const MESSAGE_META_COLUMNS = `id, ticket_id as "ticketId", raw_message_id as "rawMessageId", source,
  author_role as "authorRole", sent_at as "sentAt", host(client_ip) as "clientIp",
  client_hostname as "clientHostname", helo, mail_from as "mailFrom", rcpt_to as "rcptTo", tls,
  tls_cipher as "tlsCipher", auth_results as "authResults", auth_header as "authHeader",
  auth_verdict as "authVerdict", auth_reason as "authReason", received_at as "receivedAt"`;

/** The fields copied from the header, which a sender makes as long as MAX_HEADER_BYTES lets them. */
const MESSAGE_HEADER_COLUMNS = `author_address as "authorAddress", author_name as "authorName", subject,
  message_id as "messageId", in_reply_to as "inReplyTo", "references"`;

const MESSAGE_COLUMNS = `${MESSAGE_META_COLUMNS}, ${MESSAGE_HEADER_COLUMNS},
  reply_text as "replyText", full_text as "fullText", removed_text as "removedText", forwarded, html`;

export async function listTicketMessages(db: Db, ticketId: string): Promise<StoredTicketMessage[]> {
  const { rows } = await db.query<StoredTicketMessage>(
    `select ${MESSAGE_COLUMNS} from ticket_messages where ticket_id = $1 order by received_at, id`,
    [ticketId],
  );
  return rows;
}

/** A ticket message that did not come over SMTP: no raw bytes, no envelope, no verdicts. */
export interface TypedTicketMessage {
  ticketId: string;
  /** A retry with the same key adds no row (e.g. the HTTP API's Idempotency-Key). */
  idempotencyKey: string;
  source: Exclude<MessageSource, 'smtp'>;
  authorAddress: string;
  authorName: string | null;
  authorRole: 'staff' | 'requester';
  subject: string | null;
  text: string;
  html: string | null;
}

/**
 * Inserts one typed ticket message, with the same NOTIFY ticket_message on commit as store_message.
 * Returns its id; null when a message with this key already exists in the ticket.
 */
export async function insertTicketMessage(db: Db, m: TypedTicketMessage): Promise<string | null> {
  const { rows } = await db.query<{ id: string }>({
    name: 'insert_ticket_message',
    text: `with inserted as (
             insert into ticket_messages (ticket_id, idempotency_key, source, author_address, author_name,
                                          author_role, subject, reply_text, full_text, html, rcpt_to)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, '{}')
             on conflict (ticket_id, idempotency_key) do nothing
             returning id, ticket_id
           )
           select id, pg_notify('ticket_message', json_build_object('ticket', ticket_id, 'id', id)::text)::text
             from inserted`,
    values: [
      m.ticketId,
      wellFormed(m.idempotencyKey),
      m.source,
      wellFormed(m.authorAddress),
      nullable(m.authorName),
      m.authorRole,
      nullable(m.subject),
      wellFormed(m.text),
      nullable(m.html),
    ],
  });
  return rows[0]?.id ?? null;
}

/** What a page of a list (outbox rows, refusals) holds at most: rows, and bytes of JSON (the first row always). */
export interface RowBounds {
  limit: number;
  pageBytes: number;
}

/** A row of `sizedRows`, before `sizedResult` takes its bookkeeping off. */
export type SizedRow<T> = T & { n: string; running: string; rowsRead: string };

/**
 * The rows of `select` (named `p`; it reads `limit` + 1 of them) in the order `order` of its columns,
 * numbered `n`, while their summed `size` stays within `cap` (the first row always) and at most `limit`.
 */
export function sizedRows(select: string, order: string, size: string, limit: string, cap: string): string {
  return `
  with page as (${select}), sized as (
    select p.*, row_number() over w as n, sum(${size}) over w as running
      from page p window w as (order by ${order} rows unbounded preceding)
  )
  select *, (select count(*) from sized) as "rowsRead" from sized
   where n <= ${limit} and (n = 1 or running <= ${cap}) order by n`;
}

/** The rows without their bookkeeping, and whether one was left for the next page. */
export function sizedResult<T>(rows: SizedRow<T>[]): { rows: T[]; more: boolean } {
  return {
    rows: rows.map(({ n: _n, running: _r, rowsRead: _c, ...row }) => row as T),
    more: rows.length > 0 && Number(rows[0]!.rowsRead) > rows.length,
  };
}

// ---------------------------------------------------------------------------------------------
// The HTTP API's reads, bounded in SQL: long texts cut to `textChars` characters with left() (and
// whether each was cut), and a page stopped before the message whose JSON would pass `pageBytes`,
// so that no huge row is ever loaded whole into Node (src/api/limits.ts has the bounds).

/**
 * The long text fields of a message, as the API names them, then the header fields (references is
 * the References field: the ids joined by spaces) and those of a forwarded message (its lines of
 * the body, as long as the body lets them be).
 */
export const TEXT_FIELDS = [
  'text',
  'fullText',
  'removedText',
  'html',
  'forwardedText',
  'subject',
  'from',
  'fromName',
  'messageId',
  'inReplyTo',
  'references',
  'forwardedFrom',
  'forwardedDate',
  'forwardedSubject',
  'forwardedTo',
] as const;
export type TextField = (typeof TEXT_FIELDS)[number];

export type BoundedTicketMessage = StoredTicketMessage & { truncated: TextField[] };

export interface MessageBounds {
  /** Characters each long text keeps. */
  textChars: number;
  /** What a page may add up to (the first message is always returned). */
  pageBytes: number;
  /** Messages a page returns at most. */
  limit: number;
  /** fullText, removedText and html too (else they are not read at all). */
  full: boolean;
  /** By received time, then id (`ticket show`), instead of by id (the API's pages, whose `after` is an id). */
  byReceived?: boolean;
}

const TEXT_COLUMNS: Record<TextField, string> = {
  text: 'reply_text',
  fullText: 'full_text',
  removedText: 'removed_text',
  html: 'html',
  forwardedText: "(forwarded->>'text')",
  subject: 'subject',
  from: 'author_address',
  fromName: 'author_name',
  messageId: 'message_id',
  inReplyTo: 'in_reply_to',
  references: `array_to_string("references", ' ')`,
  forwardedFrom: "(forwarded->>'from')",
  forwardedDate: "(forwarded->>'date')",
  forwardedSubject: "(forwarded->>'subject')",
  forwardedTo: "(forwarded->>'to')",
};
/** The texts read only with `full`. */
const FULL_ONLY: ReadonlySet<TextField> = new Set(['fullText', 'removedText', 'html']);
const cut = (column: string) => `octet_length(left(${column}, $1)) < octet_length(${column})`;
// $1 textChars, $2 full; the where clause's own parameters follow
const BOUNDED_COLUMNS = `${MESSAGE_META_COLUMNS},
  left(author_address, $1) as "authorAddress", left(author_name, $1) as "authorName", left(subject, $1) as subject,
  left(message_id, $1) as "messageId", left(in_reply_to, $1) as "inReplyTo",
  case when char_length(${TEXT_COLUMNS.references}) <= $1 then "references"
       else array(select r from (select r, i, sum(char_length(r) + 1) over (order by i) - 1 as upto
                                   from unnest("references") with ordinality u(r, i)) s
                   where upto <= $1 order by i) end as "references",
  left(reply_text, $1) as "replyText",
  case when $2 then left(full_text, $1) end as "fullText",
  case when $2 then left(removed_text, $1) end as "removedText",
  case when $2 then left(html, $1) end as "html",
  case when forwarded is not null
       then forwarded || jsonb_build_object('text', left(coalesce(forwarded->>'text', ''), $1),
              'from', left(forwarded->>'from', $1), 'date', left(forwarded->>'date', $1),
              'subject', left(forwarded->>'subject', $1), 'to', left(forwarded->>'to', $1)) end as forwarded,
  array_remove(array[${TEXT_FIELDS.map(
    (f) =>
      `\n    case when ${FULL_ONLY.has(f) ? '$2 and ' : ''}coalesce(${cut(TEXT_COLUMNS[f])}, false) then '${f}' end`,
  ).join(',')}
  ], null) as truncated`;

/**
 * What the page would weigh: each row's JSON (as PostgreSQL writes it) and its attachments' metadata,
 * summed in id order; a row is returned while the sum stays within the cap, the first one always.
 */
const boundedPage = (where: string, limit: string, cap: string, byReceived = false) =>
  sizedRows(
    `select ${BOUNDED_COLUMNS} from ticket_messages where ${where}
      order by ${byReceived ? 'received_at, id' : 'id'} limit ${limit} + 1`,
    byReceived ? '"receivedAt", id' : 'id',
    `octet_length(row_to_json(p)::text) + coalesce((
       select sum(200 + octet_length(coalesce(a.filename, '')) + octet_length(a.content_type)
                  + octet_length(coalesce(a.content_id, '')))
         from attachments a where a.raw_message_id = p."rawMessageId"), 0)`,
    limit,
    cap,
  );

/**
 * A ticket's messages with an id above `afterId`, by id (or by received time), bounded; `more` when a
 * row was left for the next page (by the limit or the byte cap).
 */
export async function listTicketMessagesBounded(
  db: Db,
  ticketId: string,
  afterId: string,
  bounds: MessageBounds,
): Promise<{ messages: BoundedTicketMessage[]; more: boolean }> {
  const { rows } = await db.query<SizedRow<BoundedTicketMessage>>({
    name: bounds.byReceived ? 'list_ticket_messages_bounded_by_received' : 'list_ticket_messages_bounded',
    text: boundedPage('ticket_id = $3 and id > $4', '$5::bigint', '$6::bigint', bounds.byReceived),
    values: [bounds.textChars, bounds.full, ticketId, afterId, bounds.limit, bounds.pageBytes],
  });
  const page = sizedResult(rows);
  return { messages: page.rows, more: page.more };
}

/** One message (of a ticket, unless null), its long texts cut to `textChars`, or null. */
export async function findTicketMessageBounded(
  db: Db,
  ticketId: string | null,
  by: { id: string } | { idempotencyKey: string },
  textChars: number,
): Promise<BoundedTicketMessage | null> {
  const { rows } = await db.query<BoundedTicketMessage>({
    name: 'id' in by ? 'find_ticket_message_bounded' : 'find_ticket_message_bounded_by_key',
    text: `select ${BOUNDED_COLUMNS} from ticket_messages
            where ($3::text is null or ticket_id = $3) and ${'id' in by ? 'id = $4' : 'idempotency_key = $4'}`,
    values: [textChars, true, ticketId, 'id' in by ? by.id : by.idempotencyKey],
  });
  return rows[0] ?? null;
}

/**
 * A piece of one long text of a message: `chars` characters from character `offset` (0-based), and
 * the text's whole length in characters (0 when the message has none); null when there is no such
 * message in the ticket.
 */
export async function readMessageText(
  db: Db,
  ticketId: string,
  messageId: string,
  field: TextField,
  offset: number,
  chars: number,
): Promise<{ text: string; length: number } | null> {
  const column = TEXT_COLUMNS[field];
  const { rows } = await db.query<{ text: string; length: number }>({
    name: `read_message_text_${field}`,
    text: `select coalesce(substr(${column}, $3 + 1, $4), '') as text, coalesce(char_length(${column}), 0)::int as length
             from ticket_messages where ticket_id = $1 and id = $2`,
    values: [ticketId, messageId, offset, chars],
  });
  return rows[0] ?? null;
}

// ---------------------------------------------------------------------------------------------
// Reprocessing: the reply text of stored messages derived again from their raw bytes.

export interface ReprocessCandidate {
  id: string;
  ticketId: string;
  rawMessageId: string;
  replyText: string;
  removedText: string;
  forwarded: ForwardedMessage | null;
}

/** How many ticket messages a reprocess selection covers (for its progress). */
export async function countReprocessCandidates(db: Db, filter: { ticketId?: string; since?: Date }): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `select count(*)::int as n from ticket_messages
      where raw_message_id is not null -- typed messages (cli, api) have no raw bytes to derive from
        and ($1::text is null or ticket_id = $1) and ($2::timestamptz is null or received_at >= $2)`,
    [filter.ticketId ?? null, filter.since ?? null],
  );
  return rows[0]!.n;
}

/** The next batch of ticket messages after `afterId`, oldest first, each with its raw bytes. */
export async function listReprocessCandidates(
  db: Db,
  filter: { ticketId?: string; since?: Date; afterId: string; limit: number },
): Promise<Array<ReprocessCandidate & { bytes: Buffer }>> {
  const { rows } = await db.query<ReprocessCandidate & { bytes: Buffer }>(
    `select tm.id, tm.ticket_id as "ticketId", tm.raw_message_id as "rawMessageId", tm.reply_text as "replyText",
            tm.removed_text as "removedText", tm.forwarded, r.bytes
       from ticket_messages tm join raw_messages r on r.id = tm.raw_message_id
      where tm.id > $1 and ($2::text is null or tm.ticket_id = $2) and ($3::timestamptz is null or tm.received_at >= $3)
      order by tm.id limit $4`,
    [filter.afterId, filter.ticketId ?? null, filter.since ?? null, filter.limit],
  );
  return rows;
}

/**
 * One message's new reply text, the previous one kept in reply_text_history, in one statement
 * (one transaction). Only when the stored text is still what the caller read: a concurrent
 * reprocess of the same message updates it once. Returns whether it changed anything.
 */
export async function replaceReplyText(
  db: Db,
  previous: ReprocessCandidate,
  next: { replyText: string; removedText: string; forwarded: ForwardedMessage | null },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `with updated as (
       update ticket_messages set reply_text = $5, removed_text = $6, forwarded = $7::jsonb
        where id = $1 and reply_text = $2 and removed_text = $3 and forwarded is not distinct from $4::jsonb
        returning id
     )
     insert into reply_text_history (ticket_message_id, reply_text, removed_text, forwarded)
     select id, $2, $3, $4::jsonb from updated`,
    [
      previous.id,
      previous.replyText,
      previous.removedText,
      previous.forwarded === null ? null : json(previous.forwarded),
      next.replyText,
      next.removedText,
      next.forwarded === null ? null : json(next.forwarded),
    ],
  );
  return (rowCount ?? 0) > 0;
}

export interface ReplyTextHistoryEntry {
  replyText: string;
  removedText: string;
  forwarded: ForwardedMessage | null;
  replacedAt: Date;
}

export async function listReplyTextHistory(db: Db, ticketMessageId: string): Promise<ReplyTextHistoryEntry[]> {
  const { rows } = await db.query<ReplyTextHistoryEntry>(
    `select reply_text as "replyText", removed_text as "removedText", forwarded, replaced_at as "replacedAt"
       from reply_text_history where ticket_message_id = $1 order by id`,
    [ticketMessageId],
  );
  return rows;
}

export async function ping(db: Db): Promise<void> {
  await db.query('select 1');
}

// ---------------------------------------------------------------------------------------------
// The HTTP API's Idempotency-Key of POST /v1/tickets (migration api_requests).

export interface ApiRequest {
  ticketId: string;
  messageId: string | null;
  /** The SHA-256 of the body that made it; null for a row from before migration 0010. */
  bodySha256?: Buffer | null;
}

/** The ticket an earlier POST /v1/tickets with this key made, if any. */
export async function findApiRequest(db: Db, key: string): Promise<ApiRequest | null> {
  const { rows } = await db.query<ApiRequest>({
    name: 'find_api_request',
    text: `select ticket_id as "ticketId", message_id::text as "messageId", body_sha256 as "bodySha256"
             from api_requests where idempotency_key = $1`,
    values: [key],
  });
  return rows[0] ?? null;
}

/** Records the key in the transaction that creates the ticket; false when another request holds it. */
export async function insertApiRequest(db: Db, key: string, r: ApiRequest): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'insert_api_request',
    text: `insert into api_requests (idempotency_key, ticket_id, message_id, body_sha256) values ($1, $2, $3, $4)
           on conflict (idempotency_key) do nothing`,
    values: [key, r.ticketId, r.messageId, r.bodySha256 ?? null],
  });
  return rowCount === 1;
}

/** Records the body of an answer stored with an Idempotency-Key, in the transaction that stores it. */
export async function insertApiAnswer(
  db: Db,
  a: { ticketId: string; key: string; bodySha256: Buffer; messageId: string },
): Promise<void> {
  await db.query({
    name: 'insert_api_answer',
    text: `insert into api_answers (ticket_id, idempotency_key, body_sha256, message_id) values ($1, $2, $3, $4)
           on conflict do nothing`,
    values: [a.ticketId, a.key, a.bodySha256, a.messageId],
  });
}

/** The SHA-256 of the body an answer with this key was stored from; null for one from before migration 0010. */
export async function findApiAnswerBody(db: Db, ticketId: string, key: string): Promise<Buffer | null> {
  const { rows } = await db.query<{ bodySha256: Buffer }>({
    name: 'find_api_answer_body',
    text: `select body_sha256 as "bodySha256" from api_answers where ticket_id = $1 and idempotency_key = $2`,
    values: [ticketId, key],
  });
  return rows[0]?.bodySha256 ?? null;
}
