// DATA: read with a byte cap, parse, store everything of one message in one transaction, and
// only then answer 250. Any trouble of ours, including our own deadline, answers 451.
import crypto from 'node:crypto';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { storeMessage, type Envelope, type TicketMessageRow, type UnroutedMessageRow } from '../../db/queries.js';
import { idempotencyKey, parseMessage, type ParsedMessage } from '../../mail/parse.js';
import { logDecision, type Route, type SmtpContext } from '../context.js';
import { DeadlineExceeded, failureTag } from '../deadline.js';
import { reply, type SmtpReply } from '../reply.js';

type Callback = (err?: Error | null, message?: string) => void;

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
  const parsed = await parseMessage(raw);
  const key = idempotencyKey(raw, parsed);
  const envelope = envelopeOf(session);
  const ticketMessages: TicketMessageRow[] = [];
  const unrouted: UnroutedMessageRow[] = [];
  for (const route of routes) {
    if (route.kind === 'ticket') ticketMessages.push(ticketMessageRow(ctx, route, parsed, key, envelope));
    else unrouted.push({ recipient: route.address.toLowerCase(), ticketId: null, reason: 'postmaster', idempotencyKey: key, fromAddress: parsed.from[0]?.address ?? null, subject: parsed.subject, messageId: parsed.messageId, envelope });
  }
  const fields = { tickets: ticketMessages.map((t) => t.ticketId), messageId: parsed.messageId, from: parsed.from[0]?.address };

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

function ticketMessageRow(ctx: SmtpContext, route: Extract<Route, { kind: 'ticket' }>, parsed: ParsedMessage, key: string, envelope: Envelope): TicketMessageRow {
  const author = parsed.from.length === 1 ? parsed.from[0]! : null;
  return {
    ticketId: route.ticket.id,
    idempotencyKey: key,
    authorAddress: author?.address ?? null,
    authorName: author?.name || null,
    authorRole: author ? roleOf(ctx, author.address, route.ticket.requester) : null,
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
    authResults: null,
    authHeader: null,
    authVerdict: null,
    authReason: null,
  };
}

function roleOf(ctx: SmtpContext, address: string, requester: string): string {
  const domain = address.slice(address.lastIndexOf('@'));
  if (ctx.config.staffSenders.includes(address) || ctx.config.staffSenders.includes(domain)) return 'staff';
  if (address === requester.toLowerCase()) return 'requester';
  return 'stranger';
}
