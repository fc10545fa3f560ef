// A loop that carries no header saying so: an auto-responder (another helpdesk's acknowledgement, a
// mailbox rule) answering each of our notifications with the same words, and our notification of
// that answer calling up the next one. TICKET_MAX_MESSAGES_PER_HOUR bounds such a loop (60 an hour,
// every hour); this breaks it: the third message with the same text from the same author to the
// same ticket within an hour is set aside as a loop — stored as unrouted mail with the reason,
// answered 250, posted nowhere and notifying nobody. The text is compared with its digits and
// spacing folded ("request #4521 received" and "#4522" are the same words), and only a text a
// machine would repeat counts: two lines of words at least (80 characters), no attachment (three screenshots in a row are
// a person's). In memory, per process, as the per-IP limits: a restart forgets, the hourly cap holds.
import crypto from 'node:crypto';
import type { TicketMessageRow, UnroutedMessageRow } from '../db/queries.js';
import { setNewest } from '../newest.js';
import type { Analysis } from './types.js';

type Stored = Extract<Analysis, { kind: 'store' }>;

/** Committed messages with the same text a ticket takes from one author within the window; the next is a loop. */
export const REPEATS_ALLOWED = 2;
export const REPEAT_WINDOW_MS = 60 * 60 * 1000;
/** Texts shorter than this (folded) are what people repeat: "Спасибо!", "Ok", "+1", a sentence. Acknowledgements run longer. */
export const REPEAT_MIN_CHARS = 80;
/** Keys kept at most; the oldest go first. */
const MAX_KEYS = 20_000;

const fold = (text: string) => text.toLowerCase().replace(/\d+/g, '0').replace(/\s+/g, ' ').trim();

export class RepeatedReplies {
  /** key → commit times within the window, oldest first (a Map keeps insertion order: oldest key first). */
  private readonly seen = new Map<string, number[]>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The key of a row whose text counts, or null (too short, or the message has attachments). */
  keyOf(row: TicketMessageRow, attachments: number): string | null {
    const text = fold(row.replyText);
    if (attachments > 0 || text.length < REPEAT_MIN_CHARS) return null;
    const digest = crypto.createHash('sha256').update(text).digest('base64url');
    // counted apart for mail that does not authenticate its author (AUTH_POLICY=monitor stores it), as
    // migration 0014 counts the hourly cap: two forged messages with a staff member's canned answer
    // made the real one's the third, set aside as a loop, and the customer never got it (attack run 5)
    const whose = row.authVerdict === 'AUTH_ACCEPTED' ? 'author' : 'unverified';
    return `${row.ticketId.toLowerCase()}\n${whose}\n${(row.authorAddress ?? '').toLowerCase()}\n${digest}`;
  }

  /** How often the text was committed within the window before now. */
  count(key: string): number {
    const times = this.seen.get(key);
    if (!times) return 0;
    const since = this.now() - REPEAT_WINDOW_MS;
    while (times.length && times[0]! <= since) times.shift();
    if (!times.length) this.seen.delete(key);
    return times.length;
  }

  record(key: string): void {
    const times = this.seen.get(key) ?? [];
    times.push(this.now());
    // re-inserted: the most recently used key goes last
    setNewest(this.seen, key, times.slice(-(REPEATS_ALLOWED + 1)), MAX_KEYS);
  }
}

/**
 * The analysis with every ticket message that repeats a text too often turned into an unrouted row
 * (its notifications dropped), and the keys to record once the rows are committed.
 */
export function setAsideRepeats(analysis: Stored, repeats: RepeatedReplies): { analysis: Stored; keys: string[] } {
  const { rows } = analysis;
  const keys: string[] = [];
  const loops = new Set<TicketMessageRow>();
  for (const row of rows.ticketMessages) {
    const key = repeats.keyOf(row, rows.attachments.length);
    if (key === null) continue;
    if (repeats.count(key) >= REPEATS_ALLOWED) loops.add(row);
    else keys.push(key);
  }
  if (!loops.size) return { analysis, keys };
  const reason = (row: TicketMessageRow) =>
    `the same text from ${row.authorAddress ?? 'the same author'} to ${row.ticketId} ` +
    `${REPEATS_ALLOWED + 1} times within an hour (an auto-responder answering the notifications)`;
  const unrouted: UnroutedMessageRow[] = [...loops].map((row) => ({
    recipient:
      row.envelope.rcptTo.find((a) => a.toLowerCase().includes(row.ticketId.toLowerCase())) ??
      row.envelope.rcptTo[0] ??
      '',
    ticketId: row.ticketId,
    reason: `loop: ${reason(row)}`,
    idempotencyKey: row.idempotencyKey,
    fromAddress: row.authorAddress,
    subject: row.subject,
    messageId: row.messageId,
    envelope: row.envelope,
  }));
  const kept = rows.ticketMessages.filter((row) => !loops.has(row));
  const loopTickets = new Set([...loops].map((row) => row.ticketId));
  const first = [...loops][0]!;
  return {
    analysis: {
      ...analysis,
      rows: {
        ticketMessages: kept,
        unrouted: [...rows.unrouted, ...unrouted],
        attachments: rows.attachments, // none: a message with attachments is never a repeat
        outbox: rows.outbox.filter((o) => !o.ticketId || !loopTickets.has(o.ticketId)),
      },
      unroutedOnly: kept.length === 0,
      notReply: kept.length ? analysis.notReply : { kind: 'loop', reason: reason(first) },
      facts: kept.length ? analysis.facts : { ...analysis.facts, notReply: 'loop', reason: reason(first) },
    },
    keys,
  };
}
