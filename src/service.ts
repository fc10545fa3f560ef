// Starting and stopping the whole service: database (embedded or DATABASE_URL), migrations,
// pool, HTTP, the outbox sender and prune, SMTP. Used by `serve`, the tests and the benchmark alike.
// What is opened is closed in reverse order: on stop, and when a later step of the start fails
// or is interrupted.
import path from 'node:path';
import { type Config, effectiveSettings } from './config.js';
import { migrate } from './db/migrate.js';
import { type Database, openDatabase } from './db/open.js';
import { outboxStats } from './db/outbox.js';
import { createPool, type Pool } from './db/pool.js';
import { inSchema } from './db/schema.js';
import { type RunningHttp, startHttpServer } from './http.js';
import type { Logger } from './log.js';
import { createMetrics } from './metrics.js';
import { createSender, type Outbox, openOutbox } from './outbox/open.js';
import { OutboxPruner } from './outbox/prune.js';
import type { Sender } from './outbox/sender.js';
import { type RunningSmtp, startSmtpServer } from './smtp/server.js';

export interface Service {
  smtp: RunningSmtp;
  http: RunningHttp;
  pool: Pool;
  database: Database;
  outbox: Outbox;
  /** null with OUTBOX_SEND_IN_SERVE=false (a separate `ticket-mx outbox run` sends). */
  sender: Sender | null;
  /** Graceful: idle SMTP sessions get 421 at once, messages in DATA are finished, then the rest. */
  close(): Promise<void>;
  /** Now: every SMTP session is cut, the embedded PostgreSQL is stopped (a second Ctrl-C). */
  abort(): Promise<void>;
}

/** The start was interrupted by a stop (a signal during start-up); what was opened is closed. */
export class StartInterrupted extends Error {
  override name = 'StartInterrupted';
}

interface Part {
  name: string;
  close: () => Promise<void>;
  /** What a hurried stop does instead, if anything; parts without it are left to the exit. */
  abort?: () => Promise<void>;
}

/** Parts of the service in the order they were opened; closed last-opened first. */
class Stack {
  private parts: (Part & { closed?: boolean })[] = [];

  push(part: Part): void {
    this.parts.push(part);
  }

  /** Closes every part even when one fails; the first failure is thrown after all are closed. */
  async close(log: Logger): Promise<void> {
    let first: unknown = null;
    for (const part of [...this.parts].reverse()) {
      if (part.closed) continue;
      try {
        await part.close();
      } catch (err) {
        log.error({ code: 'SERVICE_STOP_FAILED', part: part.name, err: (err as Error).message }, 'could not close');
        first ??= err;
      }
      part.closed = true;
    }
    this.parts = this.parts.filter((p) => !p.closed);
    if (first) throw first;
  }

  /**
   * Aborts what can be aborted and is not closed yet, also a part whose close is under way (SMTP
   * waiting for DATA in flight when the second Ctrl-C comes). Errors are logged, never thrown.
   */
  async abort(log: Logger): Promise<void> {
    for (const part of [...this.parts].reverse()) {
      if (part.closed || !part.abort) continue;
      await part
        .abort()
        .catch((err: Error) =>
          log.error({ code: 'SERVICE_STOP_FAILED', part: part.name, err: err.message }, 'could not abort'),
        );
    }
  }
}

/**
 * A service being started or running: `close()` and `abort()` may be called at any time, also
 * while `started` is still pending (a Ctrl-C during a long migration or initdb).
 */
export interface ServiceRun {
  /** Resolves with the running service; rejects when a step fails (its parts are closed by then). */
  started: Promise<Service>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

export function runService(config: Readonly<Config>, log: Logger, database?: Database): ServiceRun {
  const stack = new Stack();
  let stopping = false;
  let closing: Promise<void> | null = null;
  const interrupted = () => {
    if (stopping) throw new StartInterrupted('stopped during start-up');
  };
  const close = () =>
    (closing ??= (async () => {
      stopping = true;
      await started.catch(() => {}); // a start in progress finishes its step and closes what it opened
      await stack.close(log);
      log.info({ code: 'SERVICE_STOPPED' }, 'ticket-mx stopped');
    })());

  const started = (async (): Promise<Service> => {
    try {
      const opened = database ?? (await openDatabase(config, log, { supervise: true }));
      const embedded = database ? null : opened.embedded; // a database handed in is the caller's to stop
      if (embedded)
        stack.push({ name: 'embedded PostgreSQL', close: () => embedded.stop(), abort: () => embedded.stop() });
      // a database handed in (tests, the bench) gets our schema too
      const db = { ...opened, url: inSchema(opened.url, config.databaseSchema) };
      interrupted();
      const applied = await migrate(db.url);
      if (applied.length) log.info({ code: 'DB_MIGRATED', applied }, 'migrations applied');
      interrupted();
      // Waiting for a connection or a statement must end well inside the hook's deadline, so that the
      // reply names the real trouble (DB_UNAVAILABLE) rather than the deadline.
      const pool = createPool({
        connectionString: db.url,
        max: config.databasePoolSize,
        connectTimeoutMs: Math.min(5_000, Math.floor(config.hookTimeoutMs / 2)),
        // a backstop just past the deadline; the DATA deadline itself cancels its statement
        statementTimeoutMs: config.hookTimeoutMs + 1_000,
        log,
      });
      stack.push({ name: 'pool', close: () => pool.end() });
      const metrics = createMetrics({ embedded: db.embedded });
      const outbox = await openOutbox(config, pool);
      metrics.outbox.stats = async () => {
        const stats = await outboxStats(pool);
        return stats.some((s) => s.kind === 'mail')
          ? stats
          : [...stats, { kind: 'mail', depth: 0, oldestDueSeconds: 0 }];
      };
      // HTTP before SMTP: a port taken by another program stops the start before any mail is taken.
      const http = await startHttpServer({ config, pool, metrics, log, outbox });
      stack.push({ name: 'HTTP', close: () => http.close() });
      interrupted();
      // Closed after SMTP: what DATA commits while stopping is queued, and sent by the next start.
      let sender: Sender | null = null;
      if (!config.outboundSmtpUrl)
        log[config.profile === 'production' ? 'warn' : 'info'](
          { code: 'OUTBOX_FILE_SINK', dir: path.join(config.dataDir, 'outbox') },
          `OUTBOUND_SMTP_URL is unset: notifications are written to ${path.join(config.dataDir, 'outbox')}, nothing leaves the machine`,
        );
      if (config.outboxSendInServe) {
        const s = createSender(outbox, { config, pool, databaseUrl: db.url, log, metrics });
        await s.start();
        stack.push({ name: 'outbox sender', close: () => s.close() });
        sender = s;
      }
      // in the background: a first turn over a long-unpruned outbox must not hold up the start
      const pruner = new OutboxPruner({
        pool,
        keepMs: config.outboxKeepSentMs,
        log,
        onPruned: (status, rows) => metrics.outboxPruned.inc({ status }, rows),
      });
      pruner.start();
      stack.push({ name: 'outbox prune', close: () => pruner.close() });
      interrupted();
      // SMTP last, so that it closes first: no new connections, in-flight DATA commits before the pool ends.
      const smtp = await startSmtpServer({ config, pool, log, metrics, outbox });
      stack.push({ name: 'SMTP', close: () => smtp.close(), abort: () => smtp.abort() });
      interrupted();
      if (!config.tlsCertFile)
        log.warn(
          { code: 'TLS_NOT_CONFIGURED' },
          'STARTTLS is not offered: set TLS_CERT_FILE and TLS_KEY_FILE so senders can encrypt',
        );
      log.info(
        {
          code: 'SERVICE_STARTED',
          profile: config.profile,
          smtp: `${config.smtpHost}:${smtp.port}`,
          http: `${config.httpHost}:${http.port}`,
          settings: Object.fromEntries(effectiveSettings(config).map((s) => [s.name, s.value])),
        },
        `ticket-mx listening on ${config.smtpHost}:${smtp.port} (${config.profile} profile)`,
      );
      return { smtp, http, pool, database: db, outbox, sender, close, abort: () => stack.abort(log) };
    } catch (err) {
      if (!(err instanceof StartInterrupted))
        log.error(
          { code: 'SERVICE_START_FAILED', err: (err as Error).message },
          'start failed; closing what was opened',
        );
      await stack.close(log).catch(() => {});
      throw err;
    }
  })();
  return { started, close, abort: () => stack.abort(log) };
}

/** Starts the service; what was opened is closed again when a step fails. */
export function startService(config: Readonly<Config>, log: Logger, database?: Database): Promise<Service> {
  return runService(config, log, database).started;
}
