// DATA for mail to our VERP addresses (bounces+<outbox id>.<mac>@, accepted at RCPT only with a valid
// MAC): a delivery report about a notification we sent. The report is kept as unrouted mail, and a
// report of failure marks that outbox row bounced with the remote server's words, in one transaction.
// Never a ticket message, never answered by mail (no backscatter).
import crypto from 'node:crypto';
import { markOutboxBounced } from '../../db/outbox.js';
import { withTransaction } from '../../db/pool.js';
import { chargeUnroutedBytes, type Envelope, storeMessage, type UnroutedMessageRow } from '../../db/queries.js';
import { unroutedLimits, unroutedOver } from '../../db/unrouted-budget.js';
import { classifyInput, classifyMessage } from '../../mail/classify.js';
import { type DeliveryReport, findSmtpError, readDeliveryReport } from '../../mail/dsn.js';
import { idempotencyKey, type ParsedMessage, parseMessage } from '../../mail/parse.js';
import type { Route, SmtpContext } from '../context.js';
import { reply, type SmtpReply } from '../reply.js';

type BounceRoute = Extract<Route, { kind: 'bounce' }>;

/** What the report says happened, as the outbox keeps it: "550 5.1.1 …", or null when it was not a failure. */
export function failureOf(
  report: DeliveryReport | null,
  text: string,
  nullSender: boolean,
  autoReply: string | null = null,
): string | null {
  if (report) {
    if (report.action !== 'failed') return null;
    return report.diagnostic ?? (report.status ? `Status: ${report.status}` : 'failed (the report gives no reason)');
  }
  // not RFC 3464: only a null-sender message with a permanent SMTP error in its text counts, and not
  // an auto-reply (RFC 3834 sends vacation notices to the envelope sender, from <>, too)
  const error = nullSender && !autoReply ? findSmtpError(text) : null;
  return error?.status?.startsWith('5') ? error.diagnostic : null;
}

/** Why a message to a bounce address is an auto-reply rather than a report, or null (classify.ts's rules). */
function autoReplyOf(parsed: ParsedMessage | null, ctx: SmtpContext): string | null {
  if (!parsed) return null;
  const verdict = classifyMessage(classifyInput(parsed, null, ctx.config));
  return verdict?.kind === 'auto-reply' ? verdict.reason : null;
}

/** Thrown inside the transaction when a daily budget of unrouted mail (the network's, all's) is spent: nothing is kept. */
class QuotaSpent extends Error {
  constructor(readonly which: 'network' | 'all') {
    super(`unrouted budget (${which}) spent`);
  }
}

export async function storeDeliveryReport(
  ctx: SmtpContext,
  raw: Buffer,
  routes: Route[],
  envelope: Envelope,
  network: string,
): Promise<{ answer: SmtpReply; fields: Record<string, unknown> }> {
  const parsed: ParsedMessage | null = await parseMessage(raw).catch(() => null);
  const report = readDeliveryReport(raw);
  const autoReply = report ? null : autoReplyOf(parsed, ctx);
  const failure = failureOf(report, parsed?.text ?? '', !envelope.mailFrom, autoReply);
  const bounces = routes.filter((r): r is BounceRoute => r.kind === 'bounce');
  const key = parsed ? idempotencyKey(raw, parsed) : `sha256:${crypto.createHash('sha256').update(raw).digest('hex')}`;
  const what = report
    ? `delivery report (${report.action ?? 'no action'})`
    : autoReply
      ? 'auto-reply to a bounce address'
      : 'mail to a bounce address';
  // RCPT keeps a report alone in its transaction (RCPT_BOUNCE_MIXED): every route is a bounce address
  const unrouted = bounces.map(
    (route): UnroutedMessageRow => ({
      recipient: route.address.toLowerCase(),
      ticketId: null,
      reason: `${what} for outbox ${route.outboxId}${failure ? `: ${failure}` : ''}`.slice(0, 1000),
      idempotencyKey: key,
      fromAddress: parsed?.from[0]?.address ?? null,
      subject: parsed?.subject ?? null,
      messageId: parsed?.messageId ?? null,
      envelope,
    }),
  );
  const sha256 = crypto.createHash('sha256').update(raw).digest();
  const limits = unroutedLimits(ctx.config);
  const stored = await withTransaction(ctx.pool, async (tx) => {
    const result = await storeMessage(tx, {
      bytes: raw,
      sha256,
      ticketMessages: [],
      unrouted,
      attachments: [],
      maxPerHour: 0,
    });
    // unrouted mail like any other: charged to the day's budgets (its network's, all's) in the same transaction
    const over =
      (limits.perNetwork || limits.all) &&
      result.rawMessageId &&
      unroutedOver(await chargeUnroutedBytes(tx, network, raw.length), limits);
    if (over) throw new QuotaSpent(over);
    const bounced = [];
    // a retry of a report already stored has marked its row the first time
    if (result.rawMessageId && failure)
      for (const route of bounces) {
        const row = await markOutboxBounced(tx, route.outboxId, failure);
        if (row) bounced.push(row);
      }
    return { result, bounced };
  }).catch((err: unknown) => {
    if (err instanceof QuotaSpent) return err.which;
    throw err;
  });
  if (typeof stored === 'string')
    return {
      answer: stored === 'network' ? reply.unroutedQuota(limits.perNetwork) : reply.unroutedFull(limits.all),
      fields: { outbox: bounces.map((r) => r.outboxId), network },
    };
  const { result, bounced } = stored;
  for (const row of bounced) {
    ctx.metrics.outboxSends.inc({ kind: row.kind, outcome: 'bounced' });
    ctx.log.info(
      { code: 'OUTBOX_BOUNCED', id: row.id, kind: row.kind, ticket: row.ticketId, to: row.recipient, reply: failure },
      `OUTBOX_BOUNCED ${row.kind} ${row.id} to ${row.recipient}: ${failure}`,
    );
  }
  const fields = {
    outbox: bounces.map((r) => r.outboxId),
    report: report?.action ?? null,
    status: report?.status ?? null,
    bounced: bounced.map((r) => r.id),
    messageId: parsed?.messageId ?? null,
  };
  if (result.rawMessageId)
    return {
      answer: reply.reportRecorded(result.rawMessageId, what),
      fields: { ...fields, rawMessageId: result.rawMessageId },
    };
  if (!result.existingRawMessageId) throw new Error('store_message stored nothing and found no earlier copy');
  return { answer: reply.duplicate(result.existingRawMessageId), fields };
}
