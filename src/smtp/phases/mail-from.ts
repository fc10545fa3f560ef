// MAIL FROM: smtp-server has checked the syntax; any sender, the null sender <> included, may
// start a transaction, within the client IP's rate. Whether it may write to a ticket is decided
// at DATA, on the authenticated From header.
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { logDecision, type SmtpContext } from '../context.js';
import { reply } from '../reply.js';

export function onMailFrom(ctx: SmtpContext) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const fields = { mailFrom: address.address || '<>', helo: session.hostNameAppearsAs };
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
