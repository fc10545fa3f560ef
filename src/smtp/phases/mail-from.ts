// MAIL FROM: smtp-server has checked the syntax; any sender, the null sender <> included, may
// start a transaction, within the client IP's rate. Whether it may write to a ticket is decided
// at DATA, on the authenticated From header.
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { logDecision, type SmtpContext } from '../context.js';
import { reply } from '../reply.js';

/**
 * The MAIL FROM parameters of the extensions the EHLO reply advertises: SIZE, 8BITMIME's BODY,
 * SMTPUTF8 (smtp-server checks their values). smtp-server takes any other (FOO=bar, DSN's RET and
 * ENVID with DSN hidden) as if it meant something; RFC 5321 4.1.1.11 answers 555, as Postfix does.
 */
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8']);

/** The first parameter of a MAIL FROM or RCPT TO that is not in `known` (smtp-server upper-cases the names). */
export const unknownParameter = (address: SMTPServerAddress, known: ReadonlySet<string>): string | undefined =>
  Object.keys(address.args || {}).find((name) => !known.has(name));

export function onMailFrom(ctx: SmtpContext) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const fields = { mailFrom: address.address || '<>', helo: session.hostNameAppearsAs };
    const unknown = unknownParameter(address, MAIL_PARAMETERS);
    if (unknown !== undefined) {
      const answer = reply.mailParameterUnknown(unknown);
      logDecision(ctx, session, answer, fields);
      callback(answer.toError());
      return;
    }
    if (!ctx.limits.startTransaction(session.remoteAddress)) {
      const answer = reply.rateLimited(ctx.config.maxMessagesPerIpPerMinute);
      logDecision(ctx, session, answer, fields);
      callback(answer.toError());
      return;
    }
    logDecision(ctx, session, reply.mailFromAccepted(), fields);
    callback();
  };
}
