// The last step, on the main thread: the rows of one message committed in one transaction (shared
// with the messages ready at the same moment: group commit), and the outcome that follows from what
// the database found (a new message, a retry, a ticket over its hourly cap, a network over its
// daily budget for unrouted mail). And, for mail to a ticket that was refused, the record of why
// (what `ticket show` prints).
import type { Config } from '../config.js';
import type { GroupCommit } from '../db/group-commit.js';
import { type Pool, withTransaction } from '../db/pool.js';
import {
  chargeUnroutedBytes,
  REFUSALS_PER_TICKET_PER_HOUR,
  type RefusedMessage,
  recordRefusal,
  type StoreResult,
  storeMessage,
} from '../db/queries.js';
import { unroutedLimits, unroutedOver } from '../db/unrouted-budget.js';
import type { Analysis, Outcome } from './types.js';

type Stored = Extract<Analysis, { kind: 'store' }>;

/** A budget was spent by the time this message committed (another instance, another session). */
class QuotaSpent extends Error {
  constructor(readonly which: 'network' | 'all') {
    super(`unrouted budget (${which}) spent`);
  }
}

export async function deliver(
  db: { pool: Pool; commits: GroupCommit },
  config: Pick<Config, 'ticketMaxMessagesPerHour' | 'unroutedMaxBytesPerNetworkPerDay' | 'unroutedMaxBytesPerDay'>,
  analysis: Stored,
  message: { raw: Buffer; sha256: Buffer; network: string },
  /** The deadline: cancels the statement (or keeps it from starting). */
  signal?: AbortSignal,
): Promise<Outcome> {
  const { facts, rows } = analysis;
  const toStore = {
    bytes: message.raw,
    sha256: message.sha256,
    ticketMessages: rows.ticketMessages,
    unrouted: rows.unrouted,
    attachments: rows.attachments,
    outbox: rows.outbox,
  };
  const limits = unroutedLimits(config);
  let result: StoreResult;
  try {
    result =
      analysis.unroutedOnly && (limits.perNetwork || limits.all)
        ? // charged in the same transaction as the rows, so that a retry or a refusal costs nothing
          await withTransaction(db.pool, async (client) => {
            const r = await storeMessage(client, { ...toStore, maxPerHour: config.ticketMaxMessagesPerHour });
            const over =
              r.rawMessageId &&
              unroutedOver(await chargeUnroutedBytes(client, message.network, message.raw.length), limits);
            if (over) throw new QuotaSpent(over);
            return r;
          })
        : // with whatever other messages are ready at the same moment: one commit (group-commit.ts)
          await db.commits.store(toStore, signal);
  } catch (err) {
    if (err instanceof QuotaSpent)
      return err.which === 'network'
        ? { kind: 'unrouted-quota', limit: limits.perNetwork, facts }
        : { kind: 'unrouted-full', limit: limits.all, facts };
    throw err;
  }
  if (result.rateLimitedTicket)
    return {
      kind: 'ticket-rate-limited',
      ticket: result.rateLimitedTicket,
      limit: config.ticketMaxMessagesPerHour,
      facts,
    };
  if (result.rawMessageId) {
    const done = { ...facts, rawMessageId: result.rawMessageId };
    return analysis.notReply
      ? { kind: 'not-a-reply', rawMessageId: result.rawMessageId, notReply: analysis.notReply, facts: done }
      : { kind: 'committed', rawMessageId: result.rawMessageId, facts: done };
  }
  // A retry is only acknowledged when the first copy is really there; anything else is our bug: 451.
  if (!result.existingRawMessageId) throw new Error('store_message stored nothing and found no earlier copy');
  return {
    kind: 'duplicate',
    rawMessageId: result.existingRawMessageId,
    facts: { ...facts, rawMessageId: result.existingRawMessageId },
  };
}

/**
 * Each ticket's refusals being recorded, one after another: the statement counts the hour's rows
 * before it inserts, and refusals recorded side by side counted the same rows (25 in a row made 24
 * rows of the 20). Past REFUSALS_PER_TICKET_PER_HOUR waiting, more would be over the hour's share
 * whatever the count: they are not queued.
 */
const recording = new Map<string, { last: Promise<void>; waiting: number }>();

/**
 * Records a permanent refusal for each ticket the message was for. Never awaited by the reply, and
 * never fails it: a database in trouble loses the record (its log line says so), not the answer.
 */
export function recordRefusals(
  pool: Pool,
  tickets: string[],
  refusal: Omit<RefusedMessage, 'ticketId'>,
  onError: (err: Error) => void,
): void {
  for (const ticketId of new Set(tickets)) {
    const queue = recording.get(ticketId) ?? { last: Promise.resolve(), waiting: 0 };
    if (queue.waiting >= REFUSALS_PER_TICKET_PER_HOUR) continue;
    queue.waiting++;
    const mine = queue.last
      .then(() => recordRefusal(pool, { ...refusal, ticketId }))
      .catch(onError)
      .finally(() => {
        queue.waiting--;
        if (recording.get(ticketId)?.last === mine) recording.delete(ticketId);
      });
    queue.last = mine;
    recording.set(ticketId, queue);
  }
}
