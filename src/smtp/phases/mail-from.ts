// MAIL FROM: smtp-server has checked the syntax; any sender, the null sender <> included, may
// start a transaction. Whether it may write to a ticket is decided at DATA, on the From header.
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { logDecision, type SmtpContext } from '../context.js';
import { reply } from '../reply.js';

export function onMailFrom(ctx: SmtpContext) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    logDecision(ctx, session, reply.mailFromAccepted(), { mailFrom: address.address || '<>', helo: session.hostNameAppearsAs });
    callback();
  };
}
