// Builds the SMTPServer as an MX (no AUTH, SIZE from MAX_MESSAGE_BYTES, limits and timeouts),
// wires one hook per phase, and closes gracefully: in-flight DATA finishes before the pool goes.
import fs from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { createResolver } from '../mail/dns.js';
import type { Metrics } from '../metrics.js';
import type { Outbox } from '../outbox/open.js';
import type { SmtpContext } from './context.js';
import { PerIpLimits } from './limits.js';
import { onConnect } from './phases/connect.js';
import { onData } from './phases/data.js';
import { onMailFrom } from './phases/mail-from.js';
import { onRcptTo } from './phases/rcpt-to.js';
import './patches.js';

export interface RunningSmtp {
  server: SMTPServer;
  port: number;
  close(): Promise<void>;
}

export interface SmtpDeps {
  config: Readonly<Config>;
  pool: Pool;
  log: Logger;
  metrics: Metrics;
  outbox: Outbox;
}

export async function startSmtpServer(deps: SmtpDeps): Promise<RunningSmtp> {
  const { config, log } = deps;
  const ctx: SmtpContext = {
    ...deps,
    routes: new WeakMap(),
    limits: new PerIpLimits(config.maxConnectionsPerIp, config.maxMessagesPerIpPerMinute),
    buffered: deps.metrics.buffered,
    resolver: createResolver({
      servers: config.dnsServers.length ? config.dnsServers : undefined,
      timeoutMs: config.dnsTimeoutMs,
      cacheSeconds: config.dnsCacheSeconds,
    }),
  };
  const connection = onConnect(ctx);
  const tls: Partial<SMTPServerOptions> =
    config.tlsCertFile && config.tlsKeyFile
      ? { key: fs.readFileSync(config.tlsKeyFile), cert: fs.readFileSync(config.tlsCertFile) }
      : // Without a certificate smtp-server would offer STARTTLS with a built-in key that is public.
        { disabledCommands: ['AUTH', 'STARTTLS'] };

  const options: SMTPServerOptions & {
    greetingDelayMs: number;
    onProtocolRefusal: (session: unknown, reply: string) => void;
  } = {
    name: config.smtpHostname,
    banner: 'ticket-mx ESMTP',
    size: config.maxMessageBytes,
    disabledCommands: ['AUTH'],
    authOptional: true,
    ...tls,
    maxClients: config.maxClients,
    greetingDelayMs: config.greetingDelayMs,
    maxRecipients: config.maxRecipients,
    // RFC 5321 allows 512 octets; extensions and SMTPUTF8 addresses need more, 2048 as Postfix
    maxCommandLength: 2048,
    socketTimeout: config.socketTimeoutMs,
    closeTimeout: config.hookTimeoutMs + 5_000,
    useProxy: config.proxyProtocol,
    disableReverseLookup: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    logger: false,
    onMailFrom: onMailFrom(ctx),
    onRcptTo: onRcptTo(ctx),
    onData: onData(ctx),
    onProtocolRefusal(session, answer) {
      const s = session as { id?: string; remoteAddress?: string };
      deps.metrics.replies.inc({ code: 'SMTP_PROTOCOL_REFUSED', reply: answer.slice(0, 3) });
      log.info(
        { code: 'SMTP_PROTOCOL_REFUSED', reply: answer, cid: s.id, ip: s.remoteAddress },
        'SMTP_PROTOCOL_REFUSED',
      );
    },
    onConnect: connection.onConnect,
    onClose: connection.onClose,
  };
  const server = new SMTPServer(options);
  server.on('error', (err) => log.error({ code: 'SMTP_SERVER_ERROR', err: err.message }, 'SMTP server error'));
  // A client that trickles a byte now and then is never idle long enough for the socket timeout:
  // a hard cap on the whole session keeps it from holding a connection slot forever.
  server.server.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => {
      log.info(
        { code: 'SMTP_SESSION_TOO_LONG', ip: socket.remoteAddress, limitMs: config.maxSessionMs },
        'SMTP_SESSION_TOO_LONG',
      );
      socket.end(`421 4.4.2 ${config.smtpHostname} Session time limit exceeded, closing connection\r\n`);
      socket.destroySoon();
    }, config.maxSessionMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(config.smtpPort, config.smtpHost, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
