// Builds the SMTPServer as an MX (no AUTH, SIZE from MAX_MESSAGE_BYTES, limits and timeouts), the
// pipeline's worker pool and budget, wires one hook per phase, shortens idle timeouts while nearly
// full, and closes gracefully: idle sessions get 421 4.3.2 at once, a message in DATA is answered
// first (before the workers and the pool go), then its session gets the 421 too.
import fs from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { Config } from '../config.js';
import { GroupCommit } from '../db/group-commit.js';
import type { Pool } from '../db/pool.js';
import { TicketLookups } from '../db/ticket-lookups.js';
import type { Logger } from '../log.js';
import { createResolver } from '../mail/dns.js';
import type { Metrics } from '../metrics.js';
import type { Outbox } from '../outbox/open.js';
import { WorkBudget } from '../pipeline/budget.js';
import { Pipeline } from '../pipeline/pipeline.js';
import { PipelinePool } from '../pipeline/pool.js';
import { logDecision, type SmtpContext, tnxOf } from './context.js';
import { BufferedBytes, bufferLimits, PerIpLimits } from './limits.js';
import { onConnect } from './phases/connect.js';
import { onData } from './phases/data.js';
import { onMailFrom } from './phases/mail-from.js';
import { onRcptTo } from './phases/rcpt-to.js';
import './patches.js';
import type { PatchOptions } from './patches.js';
import { reply } from './reply.js';

/** The bytes one commit carries at most: a large message is committed alone. */
const COMMIT_MAX_BYTES = 8 * 1024 * 1024;
/**
 * Commits under way at once. One: the messages that become ready while it runs all go in the next,
 * which measured cheapest (npm run bench -- --smtp-source, three interleaved runs each: 1.98 ms of
 * server and 0.56 ms of PostgreSQL CPU a message, against 2.28 and 0.73 with two under way).
 */
const COMMITS_IN_FLIGHT = 1;
/**
 * A pipeline worker without a task for this long exits; the next message that needs one starts it
 * (its modules load in a second or so, before the message's CPU is counted). Most mail is small
 * and processed on the main thread (PIPELINE_INLINE_MAX_BYTES), and an idle worker holds its own
 * V8 heap and modules: 41–49 MB of RSS each (npm run bench:memory, README).
 */
const WORKER_IDLE_MS = 30_000;
/**
 * A worker's heap limit per byte of the largest message: 24, twice the flat 12× the budget charged
 * when the limit was set. It is there for shapes dearer than the measured attachments (a worker past
 * it refuses the message 550), so it did not follow the budget's charge down (src/pipeline/budget.ts).
 */
const WORKER_HEAP_PER_BYTE = 24;

export interface RunningSmtp {
  server: SMTPServer;
  port: number;
  /** Messages in process and waiting (for /metrics and tests). */
  budget: WorkBudget;
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
  _socket: Socket;
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
  const resolver = createResolver({
    servers: config.dnsServers.length ? config.dnsServers : undefined,
    timeoutMs: config.dnsTimeoutMs,
    cacheSeconds: config.dnsCacheSeconds,
  });
  const workers = new PipelinePool({
    settings: config,
    threads: config.pipelineWorkers,
    cpuLimitMs: config.pipelineCpuLimitMs,
    // well above the measured peak of the largest message, so that only a pathological one reaches it
    maxHeapMb: Math.max(256, Math.ceil((WORKER_HEAP_PER_BYTE * config.maxMessageBytes) / 2 ** 20)),
    idleMs: WORKER_IDLE_MS,
    db: deps.pool,
  });
  const ctx: SmtpContext = {
    ...deps,
    routes: new WeakMap(),
    refusedRecipient: new WeakSet(),
    tickets: new TicketLookups(deps.pool, (n) => deps.metrics.rcptLookups.observe(n)),
    limits: new PerIpLimits(config.maxConnectionsPerIp, config.maxMessagesPerIpPerMinute, Date.now, {
      maxPerNetwork: config.maxConnectionsPerNetwork,
      maxClients: config.maxClients,
      reserved: config.reservedClients,
    }),
    buffered: new BufferedBytes(bufferLimits(config.maxBufferedBytes, config.maxMessageBytes), deps.metrics.buffered),
    pipeline: new Pipeline({
      workers,
      db: deps.pool,
      commits: new GroupCommit(deps.pool, {
        maxMessages: config.databaseCommitMaxMessages,
        maxBytes: COMMIT_MAX_BYTES,
        inFlight: COMMITS_IN_FLIGHT,
        maxPerHour: config.ticketMaxMessagesPerHour,
        onBatch: (n) => deps.metrics.commitMessages.observe(n),
      }),
      resolver,
      settings: config,
    }),
    budget: new WorkBudget(config.pipelineMaxMessages, config.pipelineMaxMemoryBytes),
  };
  // Nearly full (as Postfix's stress mode): every idle client, new or already connected, gets the
  // shorter SMTP_STRESS_SOCKET_TIMEOUT_MS, so slots held by silent or trickling clients come free.
  // Leaving it, only connections armed from then on get the long timeout again: an idle one keeps
  // its short timer (re-arming them all as the first goes would give the rest five minutes again).
  let stressed = false;
  const onLoad = () => {
    if (stressed ? !ctx.limits.relieved : !ctx.limits.nearlyFull) return;
    stressed = !stressed;
    options.socketTimeout = stressed ? config.stressSocketTimeoutMs : config.socketTimeoutMs;
    if (stressed)
      for (const c of (server as unknown as { connections: Set<{ _armTimeout(): void }> }).connections) c._armTimeout();
    log.warn(
      {
        code: stressed ? 'SMTP_STRESS_ON' : 'SMTP_STRESS_OFF',
        connections: ctx.limits.total,
        timeoutMs: options.socketTimeout,
      },
      stressed ? 'nearly full: idle clients get the short timeout' : 'no longer nearly full',
    );
  };
  const connection = onConnect(ctx, onLoad);
  // Sessions between the DATA command and our reply to it: on close they are waited for.
  const inData = new Set<string>();
  let closing = false;
  const goodbye = (c: Connection) => {
    const answer = reply.shuttingDown(config.smtpHostname);
    logDecision(ctx, c.session, answer);
    c.send(answer.code, answer.message); // a 421 closes the connection
  };
  // A 421 in the middle of DATA: smtp-server's close() sends the FIN and goes on reading (to see the
  // client's FIN) for up to 5 s; paused, not one more byte is read, and the close timer ends it.
  const data = onData(ctx, (session, answer) => {
    const c = connections().find((x) => x.id === session.id);
    if (!c) return;
    c.send(answer.code, answer.message); // a 421 closes the connection
    c._socket.pause();
  });
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
  // sendmail's joke commands (WIZ, SHELL, KILL) have handlers in smtp-server: an MX answers none
  const disabled = ['AUTH', 'WIZ', 'SHELL', 'KILL'];
  const tls: Partial<SMTPServerOptions> =
    config.tlsCertFile && config.tlsKeyFile
      ? { key: fs.readFileSync(config.tlsKeyFile), cert: fs.readFileSync(config.tlsCertFile) }
      : // Without a certificate smtp-server would offer STARTTLS with a built-in key that is public.
        { disabledCommands: [...disabled, 'STARTTLS'] };

  const options: SMTPServerOptions & PatchOptions = {
    name: config.smtpHostname,
    // smtp-server writes "<name> ESMTP" itself; the banner follows it
    banner: 'ticket-mx',
    size: config.maxMessageBytes,
    disabledCommands: disabled,
    authOptional: true,
    ...tls,
    maxClients: config.maxClients,
    greetingDelayMs: config.greetingDelayMs,
    maxRecipients: config.maxRecipients,
    // RFC 5321 allows 512 octets; extensions and SMTPUTF8 addresses need more, 2048 as Postfix
    maxCommandLength: 2048,
    socketTimeout: config.socketTimeoutMs,
    // ours (closeWaitMs below) comes first: smtp-server's own 421 is for what is left a second later
    closeTimeout: closeWaitMs(config) + 1_000,
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
    softErrorLimit: config.softErrorLimit,
    hardErrorLimit: config.hardErrorLimit,
    errorDelayMs: config.errorDelayMs,
    tooManyErrors: reply.tooManyErrors().message,
    onErrorLimit(session, limit, errors) {
      const s = session as SMTPServerSession;
      deps.metrics.errorLimits.inc({ limit });
      if (limit === 'hard') deps.metrics.replies.inc({ code: 'SMTP_TOO_MANY_ERRORS', reply: '421' });
      log.info(
        {
          code: limit === 'hard' ? 'SMTP_TOO_MANY_ERRORS' : 'SMTP_ERRORS_DELAYED',
          cid: s.id,
          tnx: tnxOf(s),
          ip: s.remoteAddress,
          errors,
          ...(limit === 'soft' ? { delayMs: config.errorDelayMs } : { reply: reply.tooManyErrors().toString() }),
        },
        limit === 'hard' ? 'SMTP_TOO_MANY_ERRORS' : 'SMTP_ERRORS_DELAYED',
      );
    },
    onConnect: connection.onConnect,
    onClose: connection.onClose,
  };
  const server = new SMTPServer(options);
  if (!((server as unknown as { connections?: unknown }).connections instanceof Set))
    throw new Error("smtp-server's SMTPServer has no connections set: see src/smtp/patches.ts");
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
  const closeTimeout = closeWaitMs(config);
  return {
    server,
    port,
    budget: ctx.budget,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        const started = Date.now();
        // smtp-server stops listening, drops sockets still in a PROXY or TLS handshake, and after
        // closeTimeout says 421 to whatever is left
        // a session still in DATA past the wait (a client dripping its bytes) is told 421 4.3.2 as the
        // idle ones were, and logged so; smtp-server's own "421 4.4.2 Server shutting down" came with
        // no line of ours (attack run 5)
        const cut = setTimeout(() => {
          for (const c of connections()) goodbye(c);
        }, closeTimeout);
        cut.unref();
        server.close(() => {
          clearTimeout(cut);
          log.info({ code: 'SMTP_CLOSED', waitedMs: Date.now() - started }, 'SMTP server closed');
          // the messages in DATA are answered: their workers may go
          ctx.pipeline.close().then(resolve, resolve);
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
      await ctx.pipeline.close();
    },
  };
}

/** How long a stop waits for the messages in DATA: one deadline of theirs (HOOK_TIMEOUT_MS), and 5 s for the reply. */
const closeWaitMs = (config: Pick<Config, 'hookTimeoutMs'>): number => config.hookTimeoutMs + 5_000;
