// Every SQL statement of the outbox, one named function each, always parameterised: queueing (in the
// caller's transaction), claiming with FOR UPDATE SKIP LOCKED, marking, listing, pruning. What a row means
// and how it is delivered is src/outbox/'s.
import type pg from 'pg';
import { type Db, type Pool, withTransaction } from './pool.js';
import { type RowBounds, type SizedRow, sizedResult, sizedRows } from './queries.js';

/** Channel of the NOTIFY that queue_outbox sends on commit; the senders LISTEN to it. */
export const OUTBOX_CHANNEL = 'ticketmx_outbox';

export type OutboxStatus = 'queued' | 'sending' | 'sent' | 'failed' | 'bounced';
export const OUTBOX_STATUSES: readonly OutboxStatus[] = ['queued', 'sending', 'sent', 'failed', 'bounced'];

/** One delivery to queue (queue_outbox, in the outbox migration). */
export interface NewOutboxRow {
  kind: string;
  event: string;
  ticketId: string | null;
  /** Filled in by store_message_with_outbox for the ticket message it inserted; set it for other callers. */
  ticketMessageId?: string | null;
  recipient: string;
  payload: Record<string, unknown>;
}

export interface OutboxRow {
  id: string;
  kind: string;
  event: string;
  ticketId: string | null;
  ticketMessageId: string | null;
  recipient: string;
  payload: Record<string, unknown>;
  status: OutboxStatus;
  attempts: number;
  nextAttemptAt: Date;
  queuedAt: Date;
  createdAt: Date;
  lastAttemptAt: Date | null;
  sentAt: Date | null;
  lastReply: string | null;
  claimedBy: string | null;
}

/** A row a sender holds: the claim is `attempts` (its fencing token) until the lease ends. */
export interface ClaimedRow extends OutboxRow {
  content: Buffer | null;
}

const FIELDS: [column: string, key: string][] = [
  ['id', 'id'],
  ['kind', 'kind'],
  ['event', 'event'],
  ['ticket_id', 'ticketId'],
  ['ticket_message_id', 'ticketMessageId'],
  ['recipient', 'recipient'],
  ['payload', 'payload'],
  ['status', 'status'],
  ['attempts', 'attempts'],
  ['next_attempt_at', 'nextAttemptAt'],
  ['queued_at', 'queuedAt'],
  ['created_at', 'createdAt'],
  ['last_attempt_at', 'lastAttemptAt'],
  ['sent_at', 'sentAt'],
  ['last_reply', 'lastReply'],
  ['claimed_by', 'claimedBy'],
];
/** The select list of an OutboxRow, its columns qualified by `table` when given. */
const columns = (table = '') => FIELDS.map(([c, k]) => `${table && `${table}.`}${c} as "${k}"`).join(', ');
const COLUMNS = columns();

/** The JSON queue_outbox and store_message_with_outbox take. */
export function outboxJson(rows: NewOutboxRow[]): string {
  return JSON.stringify(outboxRecords(rows));
}

/** The rows as queue_outbox reads them (jsonb_to_record). */
export function outboxRecords(rows: NewOutboxRow[]) {
  return rows.map((r) => ({
    kind: r.kind,
    event: r.event,
    ticket_id: r.ticketId,
    ticket_message_id: r.ticketMessageId ?? null,
    recipient: r.recipient,
    payload: r.payload,
  }));
}

/** Queues deliveries in the caller's transaction; they become visible (and the senders wake) on commit. */
export async function queueOutbox(db: Db, rows: NewOutboxRow[]): Promise<string[]> {
  if (!rows.length) return [];
  const { rows: ids } = await db.query<{ id: string }>({
    name: 'queue_outbox',
    text: 'select id from queue_outbox($1::jsonb) as id',
    values: [outboxJson(rows)],
  });
  return ids.map((r) => r.id);
}

/**
 * Claims up to `limit` due rows of these kinds: queued ones whose time has come, and rows a sender
 * claimed but never marked before its lease ended (it crashed). Each claim counts an attempt.
 */
export async function claimOutbox(
  db: Db,
  c: { kinds: string[]; limit: number; leaseSeconds: number; claimedBy: string },
): Promise<ClaimedRow[]> {
  const { rows } = await db.query<ClaimedRow>({
    name: 'claim_outbox',
    text: `with due as (
             select id from outbox
              where status in ('queued', 'sending') and next_attempt_at <= now() and kind = any($1::text[])
              order by next_attempt_at, id
              limit $2
              for update skip locked
           )
           update outbox o
              set status = 'sending', attempts = o.attempts + 1, last_attempt_at = now(),
                  next_attempt_at = now() + make_interval(secs => $3), claimed_by = $4
             from due where o.id = due.id
           returning ${columns('o')}, o.content`,
    values: [c.kinds, c.limit, c.leaseSeconds, c.claimedBy],
  });
  return rows.sort((a, b) => Number(a.id) - Number(b.id));
}

/** Fixes what a claimed row delivers, once: later attempts send exactly these bytes. */
export async function saveOutboxContent(db: Db, id: string, attempts: number, content: Buffer): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'save_outbox_content',
    text: `update outbox set content = $3
            where id = $1 and attempts = $2 and status = 'sending' and content is null`,
    values: [id, attempts, content],
  });
  return rowCount === 1;
}

/** The end of one attempt. False when the claim was lost (the lease ended and another sender took it). */
export async function markOutboxSent(db: Db, id: string, attempts: number, reply: string): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'mark_outbox_sent',
    text: `update outbox set status = 'sent', sent_at = now(), last_reply = $3, claimed_by = null
            where id = $1 and attempts = $2 and status = 'sending'`,
    values: [id, attempts, reply],
  });
  return rowCount === 1;
}

export async function markOutboxFailed(db: Db, id: string, attempts: number, reply: string): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'mark_outbox_failed',
    text: `update outbox set status = 'failed', last_reply = $3, claimed_by = null
            where id = $1 and attempts = $2 and status = 'sending'`,
    values: [id, attempts, reply],
  });
  return rowCount === 1;
}

/** Queued again, due after delaySeconds (0: now, e.g. a send interrupted by a stop). */
export async function markOutboxDeferred(
  db: Db,
  id: string,
  attempts: number,
  reply: string,
  delaySeconds: number,
): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'mark_outbox_deferred',
    text: `update outbox set status = 'queued', last_reply = $3, claimed_by = null,
                  next_attempt_at = now() + make_interval(secs => $4)
            where id = $1 and attempts = $2 and status = 'sending'`,
    values: [id, attempts, reply, delaySeconds],
  });
  return rowCount === 1;
}

/** A delivery report said the mail was not delivered. Only a row that was handed over can bounce. */
export async function markOutboxBounced(
  db: Db,
  id: string,
  reply: string,
): Promise<{ id: string; kind: string; recipient: string; ticketId: string | null } | null> {
  const { rows } = await db.query<{ id: string; kind: string; recipient: string; ticketId: string | null }>({
    name: 'mark_outbox_bounced',
    text: `update outbox set status = 'bounced', last_reply = $2, claimed_by = null
            where id = $1 and status in ('sent', 'sending')
           returning id, kind, recipient, ticket_id as "ticketId"`,
    values: [id, reply],
  });
  return rows[0] ?? null;
}

/** `outbox retry`: a failed, bounced or waiting row is due now, and OUTBOX_MAX_AGE counts again from now. */
export async function retryOutboxRow(db: Db, id: string): Promise<OutboxRow | null> {
  const { rows } = await db.query<OutboxRow>({
    name: 'retry_outbox_row',
    text: `with retried as (
             update outbox set status = 'queued', next_attempt_at = now(), queued_at = now(), claimed_by = null
              where id = $1 and status in ('queued', 'failed', 'bounced')
             returning *
           )
           select ${COLUMNS}, pg_notify('${OUTBOX_CHANNEL}', '1')::text as notified from retried`,
    values: [id],
  });
  return rows[0] ?? null;
}

/** Seconds until the next row of these kinds is due (negative: overdue); null when nothing waits. */
export async function secondsUntilNextDue(db: Db, kinds: string[]): Promise<number | null> {
  const { rows } = await db.query<{ seconds: number | null }>({
    name: 'outbox_next_due',
    text: `select extract(epoch from min(next_attempt_at) - now())::float8 as seconds
             from outbox where status in ('queued', 'sending') and kind = any($1::text[])`,
    values: [kinds],
  });
  return rows[0]?.seconds ?? null;
}

export interface OutboxStats {
  kind: string;
  /** Rows not yet delivered: queued or being sent. */
  depth: number;
  /** How long the longest-waiting due row has been due, in seconds (0: none is due). */
  oldestDueSeconds: number;
}

export async function outboxStats(db: Db): Promise<OutboxStats[]> {
  const { rows } = await db.query<OutboxStats>({
    name: 'outbox_stats',
    text: `select kind, count(*)::int as depth,
                  coalesce(extract(epoch from now() - min(next_attempt_at) filter (where next_attempt_at <= now())),
                           0)::float8 as "oldestDueSeconds"
             from outbox where status in ('queued', 'sending') group by kind`,
  });
  return rows;
}

export async function findOutboxRow(db: Db, id: string): Promise<ClaimedRow | null> {
  const { rows } = await db.query<ClaimedRow>({
    name: 'find_outbox_row',
    text: `select ${COLUMNS}, content from outbox where id = $1`,
    values: [id],
  });
  return rows[0] ?? null;
}

/** The newest rows first, optionally of one status. */
export async function listOutbox(db: Db, filter: { status?: OutboxStatus; limit: number }): Promise<OutboxRow[]> {
  const { rows } = await db.query<OutboxRow>({
    name: 'list_outbox',
    text: `select ${COLUMNS} from outbox where ($1::text is null or status = $1) order by id desc limit $2`,
    values: [filter.status ?? null, filter.limit],
  });
  return rows;
}

export async function listTicketOutbox(db: Db, ticketId: string): Promise<OutboxRow[]> {
  const { rows } = await db.query<OutboxRow>({
    name: 'list_ticket_outbox',
    text: `select ${COLUMNS} from outbox where ticket_id = $1 order by id`,
    values: [ticketId],
  });
  return rows;
}

/** COLUMNS, but of the payload only the messageId (a page of rows must not read every payload whole). */
const BOUNDED_COLUMNS = FIELDS.map(([c, k]) =>
  c === 'payload' ? `jsonb_build_object('messageId', payload->'messageId') as payload` : `${c} as "${k}"`,
).join(', ');

/**
 * A ticket's rows with an id above `afterId`, by id, at most `limit` and `pageBytes` of JSON (one at
 * least); `more` when one was left for the next page. Of the payload only the messageId is read.
 */
export async function listTicketOutboxBounded(
  db: Db,
  ticketId: string,
  afterId: string,
  bounds: RowBounds,
): Promise<{ rows: OutboxRow[]; more: boolean }> {
  const { rows } = await db.query<SizedRow<OutboxRow>>({
    name: 'list_ticket_outbox_bounded',
    text: sizedRows(
      `select ${BOUNDED_COLUMNS} from outbox where ticket_id = $1 and id > $2 order by id limit $3::bigint + 1`,
      'id',
      'octet_length(row_to_json(p)::text)',
      '$3::bigint',
      '$4::bigint',
    ),
    values: [ticketId, afterId, bounds.limit, bounds.pageBytes],
  });
  return sizedResult(rows);
}

/** What a notification is made of: its ticket, the message that caused it, and its thread. */
export interface NotificationContext {
  ticket: { id: string; subject: string; requester: string } | null;
  message: {
    authorAddress: string | null;
    authorName: string | null;
    subject: string | null;
    replyText: string;
    rawMessageId: string | null;
    /** Whether it has attachments that are not inline (listAttachedFiles reads them). */
    hasFiles: boolean;
    /** The authorization's code (AUTH_ACCEPTED: the author was authenticated), null for older rows. */
    authVerdict: string | null;
  } | null;
  /**
   * The Message-IDs the recipient has seen in the ticket before this notification, oldest first:
   * the messages they wrote and the notifications we sent them. The thread their mail client shows.
   */
  thread: string[];
}

/** Everything a notification is rendered from, in one round trip (the ticket read as findTicket reads it). */
export async function loadNotificationContext(
  db: Db,
  row: { id: string; ticketId: string; ticketMessageId: string | null; recipient: string },
  threadLimit: number,
): Promise<NotificationContext> {
  const { rows } = await db.query<NotificationContext>({
    name: 'load_notification_context',
    text: `select
             (select json_build_object('id', t.id, 'subject', t.subject, 'requester', t.requester)
                from tickets t where t.id = $1) as ticket,
             (select json_build_object('authorAddress', m.author_address, 'authorName', m.author_name,
                       'subject', m.subject, 'replyText', m.reply_text, 'rawMessageId', m.raw_message_id::text,
                       'hasFiles', exists (select 1 from attachments a
                                            where a.raw_message_id = m.raw_message_id and not a.inline),
                       'authVerdict', m.auth_verdict)
                from ticket_messages m where m.id = $2) as message,
             array(select "messageId" from (
                     select "messageId", at, tie from (
                       -- each side newest first and limited, so that a long ticket is not read whole
                       (select tm.message_id as "messageId", tm.received_at as at, 0 as tie
                          from ticket_messages tm
                         where tm.ticket_id = $1 and tm.author_address = $3 and tm.message_id is not null
                           and tm.received_at <= (select created_at from outbox where id = $4)
                         order by tm.received_at desc limit $5)
                       union all
                       -- not the outbox: its finished rows are pruned (migrations/0009_outbox_prune.sql)
                       (select n.message_id, n.sent_at, 1
                          from notification_messages n
                         where n.ticket_id = $1 and n.recipient = $3 and n.outbox_id < $4
                         order by n.outbox_id desc limit $5)
                     ) seen order by at desc, tie desc limit $5
                   ) newest order by at, tie) as thread`,
    values: [row.ticketId, row.ticketMessageId, row.recipient, row.id, threadLimit],
  });
  return rows[0]!;
}

/** Statuses after which nothing more is done with a row (a sent row may still bounce). */
export const FINISHED_STATUSES = ['sent', 'failed', 'bounced'] as const satisfies readonly OutboxStatus[];
export type FinishedStatus = (typeof FINISHED_STATUSES)[number];

export interface PruneBatch {
  olderThanMs: number;
  limit: number;
  lockTimeoutMs: number;
  statementTimeoutMs: number;
}

/**
 * Deletes up to `limit` finished rows whose last attempt (sent, or the attempt that failed) is older
 * than `olderThanMs`, oldest first, in a transaction of its own that waits for nobody: a row another
 * transaction holds (a bounce being marked, an `outbox retry`) is skipped, and a lock on the table or
 * a slow statement ends it (lock_timeout, statement_timeout, local to it) rather than hold up the
 * senders and the commits of mail. Returns how many rows of each status went.
 */
export async function pruneOutbox(pool: Pool, b: PruneBatch): Promise<Partial<Record<FinishedStatus, number>>> {
  return withTransaction(pool, async (tx) => {
    await tx.query({
      name: 'prune_outbox_timeouts',
      text: "select set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
      values: [`${b.lockTimeoutMs}ms`, `${b.statementTimeoutMs}ms`],
    });
    // the expression and the predicate of the index outbox_finished (migrations/0009_outbox_prune.sql)
    const { rows } = await tx.query<{ status: FinishedStatus; n: number }>({
      name: 'prune_outbox',
      text: `with doomed as (
               select id from outbox
                where status in ('sent', 'failed', 'bounced')
                  and coalesce(sent_at, last_attempt_at, created_at) < now() - make_interval(secs => $1)
                order by coalesce(sent_at, last_attempt_at, created_at)
                limit $2
                for update skip locked
             ), deleted as (
               delete from outbox o using doomed where o.id = doomed.id returning o.status
             )
             select status, count(*)::int as n from deleted group by status`,
      values: [b.olderThanMs / 1000, b.limit],
    });
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  });
}

/** The VERP key the outbox migration made: the same for every instance on this database. */
export async function readVerpSecret(db: Db): Promise<string> {
  const { rows } = await db.query<{ secret: string }>({
    name: 'read_verp_secret',
    text: `select secret from outbox_keys where name = 'verp'`,
  });
  if (!rows[0]) throw new Error('outbox_keys has no verp key: the outbox migration did not run');
  return rows[0].secret;
}

/** Subscribes a dedicated connection to the NOTIFY of queue_outbox and `outbox retry`. */
export async function listenForOutbox(client: pg.ClientBase): Promise<void> {
  await client.query(`listen ${OUTBOX_CHANNEL}`);
}
