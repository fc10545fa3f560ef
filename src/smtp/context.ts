// What the phases share: configuration, pool, logger, metrics, the pipeline and its budget, and the
// per-recipient routes decided at RCPT and used at DATA. Also the one function that logs a decision.
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import type { TicketLookups } from '../db/ticket-lookups.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Outbox } from '../outbox/open.js';
import type { WorkBudget } from '../pipeline/budget.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Route } from '../pipeline/types.js';
import type { BufferedBytes, PerIpLimits } from './limits.js';
import type { SmtpReply } from './reply.js';

export type { Route };

export interface SmtpContext {
  config: Readonly<Config>;
  pool: Pool;
  log: Logger;
  metrics: Metrics;
  /** Who is notified of a committed message, and the VERP key of our bounce addresses. */
  outbox: Outbox;
  limits: PerIpLimits;
  /** The RCPT-time ticket lookups, batched. */
  tickets: TicketLookups;
  pipeline: Pipeline;
  /** Messages processed at once and what they cost (PIPELINE_MAX_MESSAGES, PIPELINE_MAX_MEMORY_BYTES). */
  budget: WorkBudget;
  /** Message bytes held while they arrive: by all connections (SMTP_MAX_BUFFERED_BYTES), each client, each network. */
  buffered: BufferedBytes;
  /** Keyed by the address object smtp-server keeps in envelope.rcptTo, so a new transaction starts empty. */
  routes: WeakMap<SMTPServerAddress, Route>;
  /** Sessions whose current transaction had a recipient refused: their 503 to DATA is its echo. */
  refusedRecipient: WeakSet<SMTPServerSession>;
}

/** Transaction id for logs: connection id and transaction number on it. */
export const tnxOf = (session: SMTPServerSession) => `${session.id}.${session.transaction ?? 1}`;

export function logDecision(
  ctx: SmtpContext,
  session: SMTPServerSession,
  reply: SmtpReply,
  fields: Record<string, unknown> = {},
): void {
  ctx.metrics.replies.inc({ code: reply.logCode, reply: String(reply.code) });
  if (reply.logCode.startsWith('MAIL_FROM_')) ctx.refusedRecipient.delete(session);
  else if (!reply.ok && reply.logCode.startsWith('RCPT_')) ctx.refusedRecipient.add(session);
  const level = fields.err ? 'warn' : 'info';
  ctx.log[level](
    {
      code: reply.logCode,
      reply: reply.toString(),
      cid: session.id,
      tnx: tnxOf(session),
      ip: session.remoteAddress,
      ...fields,
    },
    reply.logCode,
  );
}
