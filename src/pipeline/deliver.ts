// The last step, on the main thread: the rows of one message committed in one transaction, and
// the outcome that follows from what the database found (a new message, a retry, a ticket over
// its hourly cap, a network over its daily budget for unrouted mail). And, for mail to a ticket
// that was refused, the record of why (what `ticket show` prints).
import type { Config } from '../config.js';
import { type Pool, withTransaction } from '../db/pool.js';
import {
  chargeUnroutedBytes,
  type RefusedMessage,
  recordRefusal,
  type StoreResult,
  storeMessage,
} from '../db/queries.js';
import type { Analysis, Outcome } from './types.js';

type Stored = Extract<Analysis, { kind: 'store' }>;

/** The quota was spent by the time this message committed (another instance, another session). */
class QuotaSpent extends Error {}

export async function deliver(
  pool: Pool,
  config: Pick<Config, 'ticketMaxMessagesPerHour' | 'unroutedMaxBytesPerNetworkPerDay'>,
  analysis: Stored,
  message: { raw: Buffer; sha256: Buffer; network: string },
  /** The deadline: cancels the statement (or keeps it from starting). */
  signal?: AbortSignal,
): Promise<Outcome> {
  const { facts, rows } = analysis;
  const store = (db: Parameters<typeof storeMessage>[0]) =>
    storeMessage(
      db,
      {
        bytes: message.raw,
        sha256: message.sha256,
        ticketMessages: rows.ticketMessages,
        unrouted: rows.unrouted,
        attachments: rows.attachments,
        maxPerHour: config.ticketMaxMessagesPerHour,
        outbox: rows.outbox,
      },
      signal ? { signal } : {},
    );
  const budget = config.unroutedMaxBytesPerNetworkPerDay;
  let result: StoreResult;
  try {
    result =
      analysis.unroutedOnly && budget
        ? // charged in the same transaction as the rows, so that a retry or a refusal costs nothing
          await withTransaction(pool, async (client) => {
            const r = await store(client);
            if (r.rawMessageId && (await chargeUnroutedBytes(client, message.network, message.raw.length)) > budget)
              throw new QuotaSpent();
            return r;
          })
        : await store(pool);
  } catch (err) {
    if (err instanceof QuotaSpent) return { kind: 'unrouted-quota', limit: budget, facts };
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
 * Records a permanent refusal for each ticket the message was for. Never awaited by the reply, and
 * never fails it: a database in trouble loses the record (its log line says so), not the answer.
 */
export function recordRefusals(
  pool: Pool,
  tickets: string[],
  refusal: Omit<RefusedMessage, 'ticketId'>,
  onError: (err: Error) => void,
): void {
  for (const ticketId of new Set(tickets)) recordRefusal(pool, { ...refusal, ticketId }).catch(onError);
}
