// Builds the SMTPServer as an MX (no AUTH, SIZE from MAX_MESSAGE_BYTES, limits and timeouts),
// wires one hook per phase, and closes gracefully: in-flight DATA finishes before the pool goes.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SmtpContext } from './context.js';
import { onData } from './phases/data.js';
import { onMailFrom } from './phases/mail-from.js';
import { onRcptTo } from './phases/rcpt-to.js';

export interface RunningSmtp {
  server: SMTPServer;
  port: number;
  close(): Promise<void>;
}

// smtp-server derives the enhanced status code from the reply code alone (every 550 becomes
// 5.1.1). Our replies carry their own: when the text starts with one, send it as it is.
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
const connectionProto = SMTPConnection.prototype as unknown as { send(code: number, data: unknown, context?: unknown): void; __ticketMx?: boolean };
if (!connectionProto.__ticketMx) {
  const send = connectionProto.send;
  connectionProto.send = function (code, data, context) {
    return send.call(this, code, data, typeof data === 'string' && ENHANCED.test(data) ? false : context);
  };
  connectionProto.__ticketMx = true;
}

export interface SmtpDeps {
  config: Readonly<Config>;
  pool: Pool;
  log: Logger;
  metrics: Metrics;
}

export async function startSmtpServer(deps: SmtpDeps): Promise<RunningSmtp> {
  const { config, log } = deps;
  const ctx: SmtpContext = { ...deps, routes: new WeakMap() };
  const tls: Partial<SMTPServerOptions> = config.tlsCertFile && config.tlsKeyFile
    ? { key: fs.readFileSync(config.tlsKeyFile), cert: fs.readFileSync(config.tlsCertFile) }
    // Without a certificate smtp-server would offer STARTTLS with a built-in key that is public.
    : { disabledCommands: ['AUTH', 'STARTTLS'] };

  const server = new SMTPServer({
    name: config.smtpHostname,
    banner: 'ticket-mx ESMTP',
    size: config.maxMessageBytes,
    disabledCommands: ['AUTH'],
    authOptional: true,
    ...tls,
    maxClients: config.maxClients,
    maxRecipients: config.maxRecipients,
    socketTimeout: config.socketTimeoutMs,
    closeTimeout: config.hookTimeoutMs + 5_000,
    useProxy: config.proxyProtocol,
    disableReverseLookup: true,
    hideDSN: true,
    hideREQUIRETLS: true,
    logger: false,
    onMailFrom: onMailFrom(ctx),
    onRcptTo: onRcptTo(ctx),
    onData: onData(ctx),
    onConnect(session, callback) {
      deps.metrics.connections.inc();
      callback();
    },
    onClose() {
      deps.metrics.connections.dec();
    },
  });
  server.on('error', (err) => log.error({ code: 'SMTP_SERVER_ERROR', err: err.message }, 'SMTP server error'));

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
