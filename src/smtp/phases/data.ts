// DATA: read with a byte cap, parse and authenticate, authorize the author for every ticket,
// store everything of one message in one transaction, and only then answer 250. Any trouble of
// ours, including our own deadline, answers 451.
import crypto from 'node:crypto';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { storeMessage, type Envelope, type TicketMessageRow, type UnroutedMessageRow } from '../../db/queries.js';
import { authenticate, type AuthResults } from '../../mail/authenticate.js';
import { authorize, type AuthDecision } from '../../mail/authorize.js';
import { idempotencyKey, parseMessage, type ParsedMessage } from '../../mail/parse.js';
import { logDecision, type Route, type SmtpContext } from '../context.js';
import { DeadlineExceeded, failureTag } from '../deadline.js';
import { reply, type SmtpReply } from '../reply.js';

type Callback = (err?: Error | null, message?: string) => void;
type TicketRoute = Extract<Route, { kind: 'ticket' }>;

export function onData(ctx: SmtpContext) {
  return (stream: SMTPServerDataStream, session: SMTPServerSession, callback: Callback): void => {
    const cap = ctx.config.maxMessageBytes;
    let chunks: Buffer[] = [];
    let bytes = 0;
    let tooBig = false;

    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (tooBig) return;
      if (bytes > cap) {
        tooBig = true;
        chunks = []; // nothing past the cap is kept, and what was kept is let go
        return;
      }
      chunks.push(chunk);
    });
    stream.once('error', (err) => {
      ctx.metrics.replies.inc({ code: 'DATA_ABORTED', reply: '0' });
      ctx.log.info({ code: 'DATA_ABORTED', cid: session.id, ip: session.remoteAddress, bytes, err: err.message }, 'DATA_ABORTED');
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

      const raw = Buffer.concat(chunks, bytes);
      chunks = [];
      let settled = false;
      // The deadline answers 451 and lets the work run on: if it still commits, the sender's
      // retry is recognised as a duplicate, so nothing is lost and nothing is stored twice.
      const timer = setTimeout(() => {
        settled = true;
        answer(reply.dataTempfail('DEADLINE'), { err: new DeadlineExceeded('DATA', ctx.config.hookTimeoutMs).message });
      }, ctx.config.hookTimeoutMs);
      store(ctx, session, raw).then(
        ({ answer: r, fields }) => {
          clearTimeout(timer);
          if (!settled) answer(r, fields);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!settled) answer(reply.dataTempfail(failureTag(err)), { err: (err as Error)?.message ?? String(err) });
        },
      );
    });
  };
}

async function store(ctx: SmtpContext, session: SMTPServerSession, raw: Buffer): Promise<{ answer: SmtpReply; fields: Record<string, unknown> }> {
  const routes = session.envelope.rcptTo.map((a) => ctx.routes.get(a)).filter((r): r is Route => !!r);
  const ticketRoutes = routes.filter((r): r is TicketRoute => r.kind === 'ticket');
  const envelope = envelopeOf(session);
  // Authentication needs DNS, parsing does not: both at once. Postmaster mail is not checked.
  const [parsed, auth] = await Promise.all([
    parseMessage(raw),
    ticketRoutes.length
      ? authenticate({ message: raw, ip: session.remoteAddress, helo: envelope.helo ?? '', mailFrom: envelope.mailFrom ?? '', mta: ctx.config.smtpHostname, resolver: ctx.resolver })
      : null,
  ]);
  const key = idempotencyKey(raw, parsed);
  const fields: Record<string, unknown> = { tickets: ticketRoutes.map((r) => r.ticket.id), messageId: parsed.messageId, from: parsed.from[0]?.address };

  const decisions = ticketRoutes.map((route) =>
    authorize({
      fromAddresses: parsed.from,
      requester: route.ticket.requester,
      staff: ctx.config.staffSenders,
      auth: auth!,
      trustedSealers: ctx.config.arcTrustedSealers,
      policy: ctx.config.authPolicy,
    }),
  );
  // One reply for all recipients: a refusal for any ticket refuses the message (nothing is
  // silently dropped); a permanent refusal outranks a temporary one, which a retry cannot fix.
  const refusal = decisions.find((d) => d.verdict === 'reject') ?? decisions.find((d) => d.verdict === 'tempfail');
  if (decisions.length) {
    const d = refusal ?? decisions[0]!;
    Object.assign(fields, { auth: d.code, role: d.role, authenticatedBy: d.authenticatedBy, wouldReject: d.wouldReject, reason: d.reason });
  }
  if (refusal?.reply) return { answer: refusal.verdict === 'reject' ? reply.authRejected(refusal.reply) : reply.authTempfail(refusal.reply), fields };

  const ticketMessages = ticketRoutes.map((route, i) => ticketMessageRow(route, parsed, key, envelope, auth, decisions[i]!));
  const unrouted: UnroutedMessageRow[] = routes
    .filter((r) => r.kind === 'postmaster')
    .map((route) => ({ recipient: route.address.toLowerCase(), ticketId: null, reason: 'postmaster', idempotencyKey: key, fromAddress: parsed.from[0]?.address ?? null, subject: parsed.subject, messageId: parsed.messageId, envelope }));

  const result = await storeMessage(ctx.pool, { bytes: raw, sha256: crypto.createHash('sha256').update(raw).digest(), ticketMessages, unrouted });
  if (result.rawMessageId) return { answer: reply.committed(result.rawMessageId), fields: { ...fields, rawMessageId: result.rawMessageId } };
  return { answer: reply.duplicate(result.existingRawMessageId ?? '?'), fields: { ...fields, rawMessageId: result.existingRawMessageId } };
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

function ticketMessageRow(route: TicketRoute, parsed: ParsedMessage, key: string, envelope: Envelope, auth: AuthResults | null, decision: AuthDecision): TicketMessageRow {
  const author = parsed.from.length === 1 ? parsed.from[0]! : null;
  return {
    ticketId: route.ticket.id,
    idempotencyKey: key,
    authorAddress: author?.address ?? null,
    authorName: author?.name || null,
    authorRole: decision.role,
    subject: parsed.subject,
    replyText: parsed.text.trim(),
    fullText: parsed.text,
    removedText: '',
    html: parsed.html,
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
      decision: { verdict: decision.verdict, policy: decision.policy, role: decision.role, authenticatedBy: decision.authenticatedBy, wouldReject: decision.wouldReject, wouldReply: decision.wouldReply ?? null },
    },
    authHeader: auth?.headers ?? null,
    authVerdict: decision.code,
    authReason: decision.reason,
  };
}
