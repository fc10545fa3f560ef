// RCPT TO: one decision per recipient, before any data is sent (the RCPT_* rows of the README's
// "What it answers").
// Only a ticket lookup touches the database (batched with the others asked at the same moment:
// src/db/ticket-lookups.ts); its trouble is always a 451, never a 5xx.
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { failureTag, withDeadline } from '../../deadline.js';
import { checkBounceMac, checkSignature, classifyRecipient } from '../../mail/address.js';
import { findReferenced } from '../../mail/ticket-id.js';
import { isClosed } from '../../mail/ticket-status.js';
import { logDecision, type Route, type SmtpContext } from '../context.js';
import { reply, type SmtpReply } from '../reply.js';
import { unknownParameter } from './mail-from.js';

/** No extension the EHLO reply advertises gives RCPT TO a parameter (DSN, whose NOTIFY and ORCPT are, is hidden). */
const RCPT_PARAMETERS: ReadonlySet<string> = new Set();

export function onRcptTo(ctx: SmtpContext) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const unknown = unknownParameter(address, RCPT_PARAMETERS);
    if (unknown !== undefined) {
      const answer = reply.rcptParameterUnknown(unknown);
      logDecision(ctx, session, answer, { rcpt: address.address });
      callback(answer.toError());
      return;
    }
    const started = performance.now();
    decide(ctx, address, session).then(
      ({ answer, ticket, err, repeat }) => {
        logDecision(ctx, session, answer, {
          rcpt: address.address,
          ticket,
          ms: Math.round(performance.now() - started),
          ...(repeat ? { repeat } : {}),
          ...(err ? { err } : {}),
        });
        callback(answer.ok ? null : answer.toError());
      },
      (err: unknown) => {
        // decide() catches its own trouble; this is a bug, and still only a temporary refusal
        const answer = reply.rcptTempfail('INTERNAL');
        logDecision(ctx, session, answer, { rcpt: address.address, err: String(err) });
        callback(answer.toError());
      },
    );
  };
}

async function decide(
  ctx: SmtpContext,
  address: SMTPServerAddress,
  session: SMTPServerSession,
): Promise<{ answer: SmtpReply; ticket?: string; err?: string; repeat?: true }> {
  // The same address again in this transaction (smtp-server compares without case and keeps one
  // entry): answered from the route it was given, no second lookup, still one delivery.
  const key = address.address.toLowerCase();
  const earlier = session.envelope.rcptTo.find((a) => a.address.toLowerCase() === key);
  const route = earlier && ctx.routes.get(earlier);
  if (route) {
    ctx.routes.set(address, route);
    return { answer: acceptedBy(route), ticket: route.kind === 'ticket' ? route.ticket.id : undefined, repeat: true };
  }
  const recipient = classifyRecipient(address.address, ctx.config);
  // The recipient's own reasons first: one refused for them (no such ticket, a closed one, a bad
  // bounce address) gets its 550 whatever the transaction holds, never a 452 that sends the sender
  // back to meet the 550 in a transaction of its own.
  const own = await decideOwn(ctx, recipient, address);
  if (!own.route) return own;
  // A report about our notification is handled apart from mail to tickets (src/smtp/phases/bounce.ts):
  // it never shares a transaction with another recipient, who would otherwise get nothing from it.
  const isBounce = own.route.kind === 'bounce';
  const accepted = session.envelope.rcptTo.map((a) => ctx.routes.get(a)?.kind).filter((k) => k !== undefined);
  if (accepted.some((k) => (k === 'bounce') !== isBounce)) return { answer: reply.bounceMixed(), ticket: own.ticket };
  ctx.routes.set(address, own.route);
  return own;
}

/** The answer a recipient given this route had. */
function acceptedBy(route: Route): SmtpReply {
  switch (route.kind) {
    case 'ticket':
      return reply.ticketRecipient();
    case 'support':
      return reply.support();
    case 'postmaster':
      return reply.postmaster();
    case 'bounce':
      return reply.bounceRecipient();
  }
}

/** What this recipient alone decides: an answer, and for one accepted, the route DATA will take. */
async function decideOwn(
  ctx: SmtpContext,
  recipient: ReturnType<typeof classifyRecipient>,
  address: SMTPServerAddress,
): Promise<{ answer: SmtpReply; route?: Route; ticket?: string; err?: string }> {
  switch (recipient.kind) {
    case 'foreign':
      return { answer: reply.relayDenied(recipient.domain) };
    case 'postmaster':
      return { answer: reply.postmaster(), route: { kind: 'postmaster', address: address.address } };
    case 'unknown-mailbox':
      return { answer: reply.noSuchMailbox(address.address) };
    case 'no-tag':
      return { answer: reply.support(), route: { kind: 'support', address: address.address } };
    case 'bad-tag':
      return { answer: reply.badTag(recipient.tag) };
    case 'bounce': {
      // only a report about mail we sent: the MAC is checked before anything else, no database
      const { outboxId, mac } = recipient;
      if (!outboxId || !mac || !checkBounceMac(outboxId, mac, ctx.outbox.verpSecret))
        return { answer: reply.badBounceAddress() };
      return { answer: reply.bounceRecipient(), route: { kind: 'bounce', outboxId, address: address.address } };
    }
    case 'ticket': {
      const ticketId = recipient.ticketId;
      // before the database: a forged address learns nothing, not even whether the ticket exists
      const signature = checkSignature(ticketId, recipient.mac, ctx.config);
      if (signature === 'bad') return { answer: reply.badSignature(), ticket: ticketId };
      if (signature === 'unsigned') return { answer: reply.unsigned(), ticket: ticketId };
      try {
        // support+TKT-0001@ is TKT-1's (src/mail/ticket-id.ts findReferenced)
        const found = findReferenced(ticketId, (id) => ctx.tickets.find(id));
        const ticket = await withDeadline(found, ctx.config.hookTimeoutMs, 'ticket lookup');
        if (!ticket) return { answer: reply.noSuchTicket(ticketId), ticket: ticketId };
        if (isClosed(ticket.status, ctx.config)) return { answer: reply.ticketClosed(ticket.id), ticket: ticket.id };
        return {
          answer: reply.ticketRecipient(),
          route: { kind: 'ticket', ticket, address: address.address },
          ticket: ticket.id,
        };
      } catch (err) {
        return { answer: reply.rcptTempfail(failureTag(err)), ticket: ticketId, err: (err as Error).message };
      }
    }
  }
}
