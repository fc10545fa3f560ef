// Starting and stopping the whole service: database (embedded or DATABASE_URL), migrations,
// pool, HTTP, the outbox sender and SMTP. Used by `serve`, the tests and the benchmark alike.
// What is opened is closed in reverse order: on stop, and when a later step of the start fails.
import path from 'node:path';
import { type Config, effectiveSettings } from './config.js';
import { type EmbeddedPostgres, openEmbeddedPostgres } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { outboxStats } from './db/outbox.js';
import { createPool, type Pool } from './db/pool.js';
import { inSchema } from './db/schema.js';
import { type RunningHttp, startHttpServer } from './http.js';
import type { Logger } from './log.js';
import { createMetrics } from './metrics.js';
import { createSender, type Outbox, openOutbox } from './outbox/open.js';
import type { Sender } from './outbox/sender.js';
import { type RunningSmtp, startSmtpServer } from './smtp/server.js';

export interface Database {
  url: string;
  embedded: EmbeddedPostgres | null;
}

/**
 * DATABASE_URL when set; otherwise the embedded PostgreSQL under DATA_DIR (started or attached to).
 * The URL sets search_path to DATABASE_SCHEMA: every connection opened with it works in our schema.
 */
export async function openDatabase(config: Readonly<Config>, log: Logger): Promise<Database> {
  if (config.databaseUrl) return { url: inSchema(config.databaseUrl, config.databaseSchema), embedded: null };
  const embedded = await openEmbeddedPostgres(config.dataDir, { log });
  return { url: inSchema(embedded.url, config.databaseSchema), embedded };
}

export interface Service {
  smtp: RunningSmtp;
  http: RunningHttp;
  pool: Pool;
  database: Database;
  outbox: Outbox;
  /** null with OUTBOX_SEND_IN_SERVE=false (a separate `ticket-mx outbox run` sends). */
  sender: Sender | null;
  close(): Promise<void>;
}

/** Parts of the service in the order they were opened; closed last-opened first. */
class Stack {
  private parts: { name: string; close: () => Promise<void> }[] = [];

  push(name: string, close: () => Promise<void>): void {
    this.parts.push({ name, close });
  }

  /** Closes every part even when one fails; the first failure is thrown after all are closed. */
  async close(log: Logger): Promise<void> {
    let first: unknown = null;
    for (const part of this.parts.splice(0).reverse()) {
      try {
        await part.close();
      } catch (err) {
        log.error({ code: 'SERVICE_STOP_FAILED', part: part.name, err: (err as Error).message }, 'could not close');
        first ??= err;
      }
    }
    if (first) throw first;
  }
}

export async function startService(config: Readonly<Config>, log: Logger, database?: Database): Promise<Service> {
  const stack = new Stack();
  try {
    const opened = database ?? (await openDatabase(config, log));
    if (!database && opened.embedded) stack.push('embedded PostgreSQL', () => opened.embedded!.stop());
    // a database handed in (tests, the bench) gets our schema too
    const db = { ...opened, url: inSchema(opened.url, config.databaseSchema) };
    const applied = await migrate(db.url);
    if (applied.length) log.info({ code: 'DB_MIGRATED', applied }, 'migrations applied');
    // Waiting for a connection or a statement must end well inside the hook's deadline, so that the
    // reply names the real trouble (DB_UNAVAILABLE) rather than the deadline.
    const pool = createPool({
      connectionString: db.url,
      max: config.databasePoolSize,
      connectTimeoutMs: Math.min(5_000, Math.floor(config.hookTimeoutMs / 2)),
      // a backstop just past the deadline, so that a statement we gave up on is cancelled server-side
      statementTimeoutMs: config.hookTimeoutMs + 1_000,
      log,
    });
    stack.push('pool', () => pool.end());
    const metrics = createMetrics();
    const outbox = await openOutbox(config, pool);
    metrics.outbox.stats = async () => {
      const stats = await outboxStats(pool);
      return stats.some((s) => s.kind === 'mail') ? stats : [...stats, { kind: 'mail', depth: 0, oldestDueSeconds: 0 }];
    };
    const http = await startHttpServer({ config, pool, metrics, log, outbox });
    stack.push('HTTP', () => http.close());
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
      stack.push('outbox sender', () => s.close());
      sender = s;
    }
    // SMTP last, so that it closes first: no new connections, in-flight DATA commits before the pool ends.
    const smtp = await startSmtpServer({ config, pool, log, metrics, outbox });
    stack.push('SMTP', () => smtp.close());
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
    let closing: Promise<void> | null = null;
    return {
      smtp,
      http,
      pool,
      database: db,
      outbox,
      sender,
      close: () =>
        (closing ??= stack.close(log).then(() => log.info({ code: 'SERVICE_STOPPED' }, 'ticket-mx stopped'))),
    };
  } catch (err) {
    await stack.close(log).catch(() => {});
    throw err;
  }
}
