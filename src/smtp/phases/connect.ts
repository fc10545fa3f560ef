// CONNECT: the per-IP connection limit (smtp-server enforces the global SMTP_MAX_CLIENTS).
// Behind a balancer with PROXY_PROTOCOL, remoteAddress is already the real client's.
import type { SMTPServerSession } from 'smtp-server';
import { logDecision, type SmtpContext } from '../context.js';
import { reply } from '../reply.js';

export function onConnect(ctx: SmtpContext) {
  const seen = new WeakSet<SMTPServerSession>();
  const counted = new WeakSet<SMTPServerSession>();
  return {
    onConnect(session: SMTPServerSession, callback: (err?: Error | null) => void): void {
      ctx.metrics.connections.inc();
      seen.add(session);
      if (!ctx.limits.openConnection(session.remoteAddress)) {
        const answer = reply.tooManyConnections(ctx.config.maxConnectionsPerIp);
        logDecision(ctx, session, answer);
        callback(answer.toError());
        return;
      }
      counted.add(session);
      callback();
    },
    // smtp-server closes sessions it refused before onConnect (too many clients, early talkers)
    // too: only what was counted is counted down
    onClose(session: SMTPServerSession): void {
      if (seen.delete(session)) ctx.metrics.connections.dec();
      if (counted.delete(session)) ctx.limits.closeConnection(session.remoteAddress);
    },
  };
}
