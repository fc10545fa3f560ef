// Builds the SMTPServer as an MX (no AUTH, SIZE from MAX_MESSAGE_BYTES, limits and timeouts),
// wires one hook per phase, and closes gracefully: idle sessions get 421 4.3.2 at once, a message
// in DATA is answered first (before the pool goes), then its session gets the 421 too.
import fs from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { createResolver } from '../mail/dns.js';
import type { Metrics } from '../metrics.js';
import type { Outbox } from '../outbox/open.js';
import { logDecision, type SmtpContext } from './context.js';
import { PerIpLimits } from './limits.js';
import { onConnect } from './phases/connect.js';
import { onData } from './phases/data.js';
import { onMailFrom } from './phases/mail-from.js';
import { onRcptTo } from './phases/rcpt-to.js';
import { reply } from './reply.js';
import './patches.js';

export interface RunningSmtp {
  server: SMTPServer;
  port: number;
  /** Stops listening, says 421 to idle sessions, waits for messages in DATA (at most closeTimeout). */
  close(): Promise<void>;
  /** Says 421 to every session now, DATA in flight or not. */
  abort(): Promise<void>;
}

/** The parts of smtp-server's connection objects that closing uses (server.connections holds them). */
interface Connection {
  id: string;
  session: SMTPServerSession;
  send(code: number, text: string): void;
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
    refusedRecipient: new WeakSet(),
    limits: new PerIpLimits(config.maxConnectionsPerIp, config.maxMessagesPerIpPerMinute),
    buffered: deps.metrics.buffered,
    resolver: createResolver({
      servers: config.dnsServers.length ? config.dnsServers : undefined,
      timeoutMs: config.dnsTimeoutMs,
      cacheSeconds: config.dnsCacheSeconds,
    }),
  };
  const connection = onConnect(ctx);
  // Sessions between the DATA command and our reply to it: on close they are waited for.
  const inData = new Set<string>();
  let closing = false;
  const goodbye = (c: Connection) => {
    const answer = reply.shuttingDown(config.smtpHostname);
    logDecision(ctx, c.session, answer);
    c.send(answer.code, answer.message); // a 421 closes the connection
  };
  const data = onData(ctx);
  const onDataTracked: SMTPServerOptions['onData'] = (stream, session, callback) => {
    inData.add(session.id);
    data(stream, session, (err, message) => {
      inData.delete(session.id);
      callback(err, message); // writes the reply to DATA
      if (!closing) return;
      const c = connections().find((x) => x.id === session.id);
      if (c) goodbye(c);
    });
  };
  const connections = () => [...(server.connections as unknown as Set<Connection>)];
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
    onData: onDataTracked,
    onProtocolRefusal(session, answer) {
      const s = session as SMTPServerSession;
      // A pipelined DATA whose recipients were all refused gets 503: the echo of our refusal, not
      // a client's mistake, and not a decision of its own.
      const kind = answer.startsWith('503') && ctx.refusedRecipient.has(s) ? 'consequence' : 'client';
      deps.metrics.protocolRefusals.inc({ reply: answer.slice(0, 3), kind });
      log.info(
        { code: 'SMTP_PROTOCOL_REFUSED', reply: answer, kind, cid: s.id, ip: s.remoteAddress },
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
  const closeTimeout = options.closeTimeout ?? 30_000;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        const started = Date.now();
        // smtp-server stops listening, drops sockets still in a PROXY or TLS handshake, and after
        // closeTimeout says 421 to whatever is left
        server.close(() => {
          log.info({ code: 'SMTP_CLOSED', waitedMs: Date.now() - started }, 'SMTP server closed');
          resolve();
        });
        const idle = connections().filter((c) => !inData.has(c.id));
        for (const c of idle) goodbye(c);
        log.info(
          { code: 'SMTP_CLOSING', idle: idle.length, inData: inData.size, waitMs: inData.size ? closeTimeout : 0 },
          `stopping SMTP: 421 to ${idle.length} idle session(s); waiting for ${inData.size} message(s) in DATA`,
        );
      }),
    abort: async () => {
      closing = true;
      for (const c of connections()) goodbye(c);
    },
  };
}
