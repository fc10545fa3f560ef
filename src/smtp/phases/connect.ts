// CONNECT: the per-IP and per-network connection limits and the room kept for networks not yet
// connected (smtp-server enforces the global SMTP_MAX_CLIENTS). Behind a balancer with
// PROXY_PROTOCOL, remoteAddress is already the real client's. `onLoad` hears every change of count.
import type { SMTPServerSession } from 'smtp-server';
import { logDecision, type SmtpContext } from '../context.js';
import { reply } from '../reply.js';

export function onConnect(ctx: SmtpContext, onLoad: () => void = () => {}) {
  const seen = new WeakSet<SMTPServerSession>();
  const counted = new WeakSet<SMTPServerSession>();
  return {
    onConnect(session: SMTPServerSession, callback: (err?: Error | null) => void): void {
      ctx.metrics.connections.inc();
      seen.add(session);
      const refused = ctx.limits.openConnection(session.remoteAddress);
      if (refused) {
        const answer =
          refused === 'ip'
            ? reply.tooManyConnections(ctx.config.maxConnectionsPerIp)
            : refused === 'network'
              ? reply.tooManyFromNetwork(ctx.config.maxConnectionsPerNetwork)
              : reply.reservedForOthers();
        logDecision(ctx, session, answer);
        callback(answer.toError());
        return;
      }
      counted.add(session);
      onLoad();
      callback();
    },
    // smtp-server closes sessions it refused before onConnect (too many clients, early talkers)
    // too: only what was counted is counted down
    onClose(session: SMTPServerSession): void {
      if (seen.delete(session)) ctx.metrics.connections.dec();
      if (counted.delete(session)) {
        ctx.limits.closeConnection(session.remoteAddress);
        onLoad();
      }
    },
  };
}
