// DATA: read with a byte cap; parse and authenticate; find the ticket of mail to the bare
// support@; set auto-replies and bounces aside; authorize the author for every ticket; extract
// the reply text; store everything of one message in one transaction, and only then answer 250.
// Any trouble of ours, including our own deadline, answers 451.
import crypto from 'node:crypto';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { NewOutboxRow } from '../../db/outbox.js';
import {
  type AttachmentRow,
  type Envelope,
  type ForwardedMessage,
  findTicket,
  findTicketByNotification,
  type StoreResult,
  storeMessage,
  type Ticket,
  type TicketMessageRow,
  type UnroutedMessageRow,
} from '../../db/queries.js';
import { attachmentRows, checkAttachmentLimits } from '../../mail/attachments.js';
import { type AuthResults, authenticate } from '../../mail/authenticate.js';
import { type AuthDecision, authorize } from '../../mail/authorize.js';
import { classifyInput, classifyMessage } from '../../mail/classify.js';
import { idempotencyKey, type ParsedMessage, parseMessage, UnparseableMessage } from '../../mail/parse.js';
import { extractReply } from '../../mail/reply-text.js';
import { htmlToText, sanitizeHtml } from '../../mail/sanitize.js';
import { ticketReferences } from '../../mail/ticket-ref.js';
import { isClosed } from '../../mail/ticket-status.js';
import { notificationsFor } from '../../outbox/notify.js';
import { logDecision, type Route, type SmtpContext, tnxOf } from '../context.js';
import { DeadlineExceeded, failureTag } from '../deadline.js';
import { reply, type SmtpReply } from '../reply.js';
import { storeDeliveryReport } from './bounce.js';

type Callback = (err?: Error | null, message?: string) => void;
type TicketRoute = Extract<Route, { kind: 'ticket' }>;

export function onData(ctx: SmtpContext) {
  return (stream: SMTPServerDataStream, session: SMTPServerSession, callback: Callback): void => {
    const cap = ctx.config.maxMessageBytes;
    let chunks: Buffer[] = [];
    let bytes = 0;
    let tooBig = false;
    let busy = false;
    // What this message holds of the budget all connections share; given back exactly once.
    let held = 0;
    const release = () => {
      ctx.buffered.bytes -= held;
      held = 0;
    };
    const drop = () => {
      chunks = []; // nothing more is kept, and what was kept is let go
      release();
    };

    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (tooBig || busy) return;
      if (bytes > cap) {
        tooBig = true;
        return drop();
      }
      if (ctx.buffered.bytes + chunk.length > ctx.config.maxBufferedBytes) {
        busy = true;
        return drop();
      }
      ctx.buffered.bytes += chunk.length;
      held += chunk.length;
      chunks.push(chunk);
    });
    stream.once('error', (err) => {
      drop();
      ctx.metrics.replies.inc({ code: 'DATA_ABORTED', reply: '0' });
      ctx.log.info(
        { code: 'DATA_ABORTED', cid: session.id, ip: session.remoteAddress, bytes, err: err.message },
        'DATA_ABORTED',
      );
      callback(err);
    });
    stream.once('end', () => {
      const started = performance.now();
      const answer = (r: SmtpReply, fields: Record<string, unknown>) => {
        const ms = performance.now() - started;
        ctx.metrics.dataSeconds.observe({ outcome: r.logCode }, ms / 1000);
        logDecision(ctx, session, r, { bytes, ms: Math.round(ms * 10) / 10, ...fields });
        if (r.ok) callback(null, r.message);
        else callback(r.toError());
      };
      if (tooBig) return answer(reply.tooBig(cap), { limit: cap });
      if (busy) return answer(reply.busy(), { buffered: ctx.buffered.bytes, limit: ctx.config.maxBufferedBytes });

      const raw = Buffer.concat(chunks, bytes);
      chunks = [];
      let settled = false;
      // The deadline answers 451 and cancels the statement (or keeps it from starting), so that
      // work does not pile up behind a client that was told to retry. A commit already under way
      // cannot be cancelled: the reply says so, the late commit is logged, and the sender's retry
      // is recognised as a duplicate, so nothing is lost and nothing is stored twice.
      const deadline = new AbortController();
      const timer = setTimeout(() => {
        settled = true;
        const err = new DeadlineExceeded('DATA', ctx.config.hookTimeoutMs);
        deadline.abort(err);
        answer(reply.dataDeadline(), { err: err.message });
      }, ctx.config.hookTimeoutMs);
      const late = (code: 'DATA_LATE_COMMIT' | 'DATA_LATE_ABANDONED', fields: Record<string, unknown>) => {
        const ms = Math.round(performance.now() - started);
        ctx.metrics.lateOutcomes.inc({ code });
        ctx.log[code === 'DATA_LATE_COMMIT' ? 'warn' : 'info'](
          { code, cid: session.id, tnx: tnxOf(session), ip: session.remoteAddress, ms, ...fields },
          code,
        );
      };
      store(ctx, session, raw, deadline.signal)
        .then(
          ({ answer: r, fields }) => {
            clearTimeout(timer);
            if (!settled) answer(r, fields);
            else if (r.ok) late('DATA_LATE_COMMIT', { outcome: r.logCode, reply: r.toString(), ...fields });
            else late('DATA_LATE_ABANDONED', { outcome: r.logCode, reply: r.toString(), ...fields });
          },
          (err: unknown) => {
            clearTimeout(timer);
            const tag = failureTag(err);
            const message = (err as Error)?.message ?? String(err);
            if (tag === 'DISK_FULL')
              ctx.log.error(
                { code: 'DB_DISK_FULL', cid: session.id, tnx: tnxOf(session), err: message },
                'PostgreSQL cannot write: its disk is full. Mail gets 451 until space is freed',
              );
            if (!settled) answer(reply.dataTempfail(tag), { err: message });
            else late('DATA_LATE_ABANDONED', { err: message });
          },
        )
        .finally(release);
    });
  };
}

interface Outcome {
  answer: SmtpReply;
  fields: Record<string, unknown>;
}

/** From the bytes of one message to the reply for it: every step of the DATA box in the design. */
async function store(ctx: SmtpContext, session: SMTPServerSession, raw: Buffer, signal: AbortSignal): Promise<Outcome> {
  const { config } = ctx;
  const routes = session.envelope.rcptTo.map((a) => ctx.routes.get(a)).filter((r): r is Route => !!r);
  const envelope = envelopeOf(session);
  // a report about a notification we sent (bounces+<id>.<mac>@): its own module, never a ticket message
  if (routes.some((r) => r.kind === 'bounce')) return storeDeliveryReport(ctx, raw, routes, envelope);
  const toTickets = routes.some((r) => r.kind !== 'postmaster');
  // Authentication needs DNS, parsing does not: both at once. Postmaster mail is not checked.
  const [parsed, auth] = await Promise.all([
    // mailparser refuses some input outright (a header block over 1 MB, more than 1000 parts):
    // that is the message's fault and the same on every retry, so a 550, not our 451
    parseMessage(raw).catch((err: unknown) => {
      if (err instanceof UnparseableMessage) return err;
      throw err;
    }),
    toTickets
      ? authenticate({
          message: raw,
          ip: session.remoteAddress,
          helo: envelope.helo ?? '',
          mailFrom: envelope.mailFrom ?? '',
          mta: config.smtpHostname,
          resolver: ctx.resolver,
        })
      : null,
  ]);
  if (parsed instanceof UnparseableMessage) return { answer: reply.unparseable(), fields: { err: parsed.message } };
  const fields: Record<string, unknown> = { messageId: parsed.messageId, from: parsed.from[0]?.address };
  // mailparser derives text from HTML only for a lone text/html part, not inside multipart/related
  const text = parsed.text || (parsed.html ? htmlToText(parsed.html) : '');
  if (!isUsable(parsed, text)) return { answer: reply.unparseable(), fields };
  const key = idempotencyKey(raw, parsed);
  const unrouted: UnroutedMessageRow[] = [];
  const unroutedRow = (address: string, ticketId: string | null, reason: string): UnroutedMessageRow => ({
    recipient: address.toLowerCase(),
    ticketId,
    reason,
    idempotencyKey: key,
    fromAddress: parsed.from[0]?.address ?? null,
    subject: parsed.subject,
    messageId: parsed.messageId,
    envelope,
  });

  // The bare support@ address: find the ticket in the message itself.
  const ticketRoutes = routes.filter((r): r is TicketRoute => r.kind === 'ticket');
  const reference = routes.some((r) => r.kind === 'support') ? await findSupportTicket(ctx, parsed) : null;
  // a closed ticket takes no mail, whichever address it was found through
  const closed = reference && isClosed(reference.ticket.status, config) ? reference.ticket.id : null;
  const found = closed ? null : reference;
  for (const route of routes) {
    if (route.kind === 'postmaster') unrouted.push(unroutedRow(route.address, null, 'postmaster'));
    if (route.kind !== 'support') continue;
    if (found && !ticketRoutes.some((r) => r.ticket.id === found.ticket.id)) {
      ticketRoutes.push({ kind: 'ticket', ticket: found.ticket, address: route.address });
      fields.via = found.via;
    } else if (!found) {
      // other recipients take the message; this copy is kept, not lost
      unrouted.push(unroutedRow(route.address, closed, closed ? `ticket ${closed} is closed` : 'no ticket reference'));
    }
  }
  // Only support@ addresses, and none of them found a ticket: nobody takes the message.
  if (!ticketRoutes.length && routes.every((r) => r.kind === 'support'))
    return { answer: closed ? reply.supportTicketClosed(closed) : reply.noTicket(), fields };
  fields.tickets = ticketRoutes.map((r) => r.ticket.id);

  // Auto-replies, bounces, loops and our own notifications never become ticket messages.
  const notReply = ticketRoutes.length ? classify(ctx, parsed, envelope) : null;
  if (notReply) {
    for (const route of ticketRoutes)
      unrouted.push(unroutedRow(route.address, route.ticket.id, `${notReply.kind}: ${notReply.reason}`));
    Object.assign(fields, { notReply: notReply.kind, reason: notReply.reason });
    const result = await save(ctx, raw, [], unrouted, [], signal);
    if (result.rawMessageId)
      return {
        answer: reply.notAReply(result.rawMessageId, notReply.kind),
        fields: { ...fields, rawMessageId: result.rawMessageId },
      };
    return {
      answer: reply.duplicate(existingId(result)),
      fields: { ...fields, rawMessageId: result.existingRawMessageId },
    };
  }

  const decisions = ticketRoutes.map((route) =>
    authorize({
      fromAddresses: parsed.from,
      requester: route.ticket.requester,
      staff: config.staffSenders,
      auth: auth!,
      trustedSealers: config.arcTrustedSealers,
      policy: config.authPolicy,
    }),
  );
  // One reply for all recipients: a refusal for any ticket refuses the message (nothing is
  // silently dropped); a permanent refusal outranks a temporary one, which a retry cannot fix.
  const refusal = decisions.find((d) => d.verdict === 'reject') ?? decisions.find((d) => d.verdict === 'tempfail');
  if (decisions.length) {
    const d = refusal ?? decisions[0]!;
    Object.assign(fields, {
      auth: d.code,
      role: d.role,
      authenticatedBy: d.authenticatedBy,
      wouldReject: d.wouldReject,
      reason: d.reason,
    });
  }
  if (refusal?.reply)
    return {
      answer: refusal.verdict === 'reject' ? reply.authRejected(refusal.reply) : reply.authTempfail(refusal.reply),
      fields,
    };

  const attachments = attachmentRows(parsed.attachments, parsed.html);
  const limits = checkAttachmentLimits(attachments, {
    maxCount: config.attachmentMaxCount,
    maxTotalBytes: config.attachmentMaxBytes,
  });
  if (!limits.ok)
    return { answer: reply.attachmentsLimit(limits.reason), fields: { ...fields, attachments: attachments.length } };

  const body = bodyOf(parsed, text);
  const ticketMessages = ticketRoutes.map((route, i) =>
    ticketMessageRow(route, parsed, body, key, envelope, auth, decisions[i]!),
  );
  // queued in the same transaction, and only for the ticket messages that transaction inserts
  const outbox = notificationsFor(
    ticketMessages.map((m) => ({ ...m, trusted: m.authVerdict === 'AUTH_ACCEPTED' })),
    ticketRoutes.map((r) => r.ticket),
    ctx.outbox.rules,
  );
  const result = await save(ctx, raw, ticketMessages, unrouted, attachments, signal, outbox);
  if (result.rateLimitedTicket)
    return { answer: reply.ticketRateLimited(result.rateLimitedTicket, config.ticketMaxMessagesPerHour), fields };
  if (result.rawMessageId)
    return {
      answer: reply.committed(result.rawMessageId),
      fields: { ...fields, rawMessageId: result.rawMessageId, attachments: attachments.length },
    };
  return {
    answer: reply.duplicate(existingId(result)),
    fields: { ...fields, rawMessageId: result.existingRawMessageId },
  };
}

/** A retry is only acknowledged when the first copy is really there; anything else is our bug: 451. */
function existingId(result: StoreResult): string {
  if (!result.existingRawMessageId) throw new Error('store_message stored nothing and found no earlier copy');
  return result.existingRawMessageId;
}

function save(
  ctx: SmtpContext,
  raw: Buffer,
  ticketMessages: TicketMessageRow[],
  unrouted: UnroutedMessageRow[],
  attachments: AttachmentRow[],
  signal: AbortSignal,
  outbox: NewOutboxRow[] = [],
) {
  return storeMessage(
    ctx.pool,
    {
      bytes: raw,
      sha256: crypto.createHash('sha256').update(raw).digest(),
      ticketMessages,
      unrouted,
      attachments,
      maxPerHour: ctx.config.ticketMaxMessagesPerHour,
      outbox,
    },
    { signal },
  );
}

/**
 * Something a person could read: text, HTML that shows text or an image, or a file. A From line
 * alone is not a reply (a missing boundary can leave just the headers decodable).
 */
function isUsable(parsed: ParsedMessage, text: string): boolean {
  return (
    /[^\s\u0000]/.test(text) || (parsed.html !== null && /<img\b/i.test(parsed.html)) || parsed.attachments.length > 0
  );
}

/**
 * The ticket of a message to the bare support@ address. X-Ticket-ID and [TKT-…] in the subject
 * can be typed by anyone, so with signed reply addresses only our notifications' Message-IDs count.
 */
async function findSupportTicket(
  ctx: SmtpContext,
  parsed: ParsedMessage,
): Promise<{ ticket: Ticket; via: string } | null> {
  const refs = ticketReferences(parsed);
  const guessable = !ctx.config.replyAddressSecret;
  const candidates: [string | null, string][] = guessable
    ? [
        [refs.header, 'x-ticket-id'],
        [refs.subject, 'subject'],
      ]
    : [];
  for (const [id, via] of candidates) {
    const ticket = id ? await findTicket(ctx.pool, id) : null;
    if (ticket) return { ticket, via };
  }
  const ticket = await findTicketByNotification(ctx.pool, refs.messageIds);
  return ticket ? { ticket, via: 'in-reply-to' } : null;
}

function classify(ctx: SmtpContext, parsed: ParsedMessage, envelope: Envelope) {
  const own = {
    mailDomains: ctx.config.mailDomains,
    supportLocalPart: ctx.config.supportLocalPart,
    notificationSenders: ctx.config.notificationSenders,
  };
  return classifyMessage(classifyInput(parsed, envelope.mailFrom, own));
}

interface Body {
  replyText: string;
  fullText: string;
  removedText: string;
  forwarded: ForwardedMessage | null;
  html: string | null;
}

/** What the ticket shows (the answer), and everything else kept beside it. */
function bodyOf(parsed: ParsedMessage, fullText: string): Body {
  const extracted = extractReply({ text: fullText, html: parsed.html, subject: parsed.subject });
  return {
    replyText: extracted.reply,
    fullText,
    removedText: extracted.removed,
    forwarded: extracted.forwarded ?? null,
    html: parsed.html === null ? null : sanitizeHtml(parsed.html, parsed.text),
  };
}

function envelopeOf(session: SMTPServerSession): Envelope {
  const mailFrom = session.envelope.mailFrom;
  return {
    clientIp: session.remoteAddress,
    clientHostname: session.clientHostname || null,
    helo: session.hostNameAppearsAs || null,
    mailFrom: mailFrom ? mailFrom.address : null,
    rcptTo: session.envelope.rcptTo.map((a) => a.address),
    tls: !!session.secure,
    tlsCipher: session.tlsOptions ? session.tlsOptions.name : null,
  };
}

function ticketMessageRow(
  route: TicketRoute,
  parsed: ParsedMessage,
  body: Body,
  key: string,
  envelope: Envelope,
  auth: AuthResults | null,
  decision: AuthDecision,
): TicketMessageRow {
  const author = parsed.from.length === 1 ? parsed.from[0]! : null;
  return {
    ticketId: route.ticket.id,
    idempotencyKey: key,
    authorAddress: author?.address ?? null,
    authorName: author?.name || null,
    authorRole: decision.role,
    subject: parsed.subject,
    ...body,
    messageId: parsed.messageId,
    inReplyTo: parsed.inReplyTo,
    references: parsed.references,
    sentAt: parsed.date,
    envelope,
    authResults: auth && {
      spf: auth.spf,
      dkim: auth.dkim,
      dmarc: auth.dmarc,
      arc: auth.arc,
      temporaryChecks: auth.temporaryChecks,
      decision: {
        verdict: decision.verdict,
        policy: decision.policy,
        role: decision.role,
        authenticatedBy: decision.authenticatedBy,
        wouldReject: decision.wouldReject,
        wouldReply: decision.wouldReply ?? null,
      },
    },
    authHeader: auth?.headers ?? null,
    authVerdict: decision.code,
    authReason: decision.reason,
  };
}
