// Pruning the outbox (OUTBOX_KEEP_SENT, src/outbox/prune.ts) against a real PostgreSQL: finished rows
// older than the setting go, waiting and recent ones stay; batches of 500; a row another transaction
// holds is skipped, a lock on the table ends the turn at once, and neither crashes nor blocks anything;
// `serve` prunes at start and on its timer, and stops with it; a later notification still threads
// onto the pruned ones (and a reply to one still finds its ticket); 0/off disables; bad values are
// refused naming the variable; `outbox run` (and `run --once`) prunes the same way. Also migration 0009 on an
// installation that has notifications.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { migrate, readMigrations } from '../../src/db/migrate.js';
import { pruneOutbox } from '../../src/db/outbox.js';
import { createPool, type Pool, withTransaction } from '../../src/db/pool.js';
import { inSchema } from '../../src/db/schema.js';
import { createLogger } from '../../src/log.js';
import { notifyRules } from '../../src/outbox/notify.js';
import { OutboxPruner } from '../../src/outbox/prune.js';
import { createTicketWithMessage } from '../../src/outbox/tickets.js';
import { MIGRATIONS_DIR } from '../../src/paths.js';
import { cleanEnv, runCli, spawnCli } from '../helpers/cli.js';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { readMail, waitForStatus } from '../helpers/outbox.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

const DAY = 86_400_000;
const KEEP_30D = 30 * DAY;
const STAFF = 'staff@helpdesk.test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Log lines of a logger of our own, parsed. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger('debug', sink), lines, withCode: (code: string) => lines.filter((l) => l.code === code) };
}

/**
 * `n` outbox rows of one status, as the sender leaves them: created `createdDaysAgo` days ago, their
 * last attempt (and for sent and bounced rows the send) `lastDaysAgo` days ago. Returns their ids.
 */
async function addRows(
  pool: pg.Pool,
  n: number,
  status: 'queued' | 'sending' | 'sent' | 'failed' | 'bounced',
  lastDaysAgo: number,
  createdDaysAgo = lastDaysAgo,
): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `insert into outbox (kind, event, ticket_id, recipient, status, attempts, created_at, queued_at,
                         next_attempt_at, last_attempt_at, sent_at)
     select 'mail', 'staff_reply', 'TKT-1', 'r' || g || '@example.ru', $2, 1,
            now() - make_interval(days => $4), now() - make_interval(days => $4),
            now() - make_interval(days => $3), now() - make_interval(days => $3),
            case when $2 in ('sent', 'bounced') then now() - make_interval(days => $3) end
       from generate_series(1, $1::int) g
     returning id`,
    [n, status, lastDaysAgo, createdDaysAgo],
  );
  return rows.map((r) => r.id);
}

const existing = async (pool: pg.Pool, ids: string[]) =>
  (await pool.query<{ id: string }>('select id from outbox where id = any($1::bigint[]) order by id', [ids])).rows.map(
    (r) => r.id,
  );

describe('OUTBOX_KEEP_SENT', () => {
  it('defaults to 30 days in both profiles and reads durations', () => {
    expect(loadConfig({}).outboxKeepSentMs).toBe(KEEP_30D);
    expect(loadConfig({ DATABASE_URL: 'postgres://db/x', MAIL_DOMAINS: 'x.ru' }).outboxKeepSentMs).toBe(KEEP_30D);
    expect(loadConfig({ OUTBOX_KEEP_SENT: '12h' }).outboxKeepSentMs).toBe(12 * 3_600_000);
    expect(loadConfig({ OUTBOX_KEEP_SENT: '30d' }).outboxKeepSentMs).toBe(KEEP_30D);
    expect(loadConfig({ OUTBOX_KEEP_SENT: ' 1H ' }).outboxKeepSentMs).toBe(3_600_000);
  });

  it.each(['0', 'off', 'OFF', ' off '])('%j turns pruning off', (value) => {
    expect(loadConfig({ OUTBOX_KEEP_SENT: value }).outboxKeepSentMs).toBe(0);
  });

  it.each([
    ['59m', 'OUTBOX_KEEP_SENT: must be at least 1h, or 0 or off to keep every row (got "59m")'],
    ['0d', 'OUTBOX_KEEP_SENT: must be at least 1h, or 0 or off to keep every row (got "0d")'],
    ['3651d', 'OUTBOX_KEEP_SENT: must be at most 3650d, or 0 or off to keep every row (got "3651d")'],
    ['30 days', 'OUTBOX_KEEP_SENT: must be a duration such as 12h or 30d, or 0 or off (got "30 days")'],
    ['-1h', 'OUTBOX_KEEP_SENT: must be a duration such as 12h or 30d, or 0 or off (got "-1h")'],
    ['never', 'OUTBOX_KEEP_SENT: must be a duration such as 12h or 30d, or 0 or off (got "never")'],
  ])('%j is a configuration error naming the variable', (value, problem) => {
    let error: unknown;
    try {
      loadConfig({ OUTBOX_KEEP_SENT: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([problem]);
  });

  it('a bad value stops serve with exit 78 before it opens anything', async () => {
    const r = await runCli(['serve'], cleanEnv({ OUTBOX_KEEP_SENT: '30min' }));
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('OUTBOX_KEEP_SENT: must be a duration such as 12h or 30d, or 0 or off (got "30min")');
  });
});

describe('the prune', () => {
  let db: TestDatabase;
  let pool: Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    // one connection: what the prune sets for its transaction must not stay on it
    pool = createPool({ connectionString: db.url, max: 1 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });
  beforeEach(async () => {
    await db.pool.query('delete from outbox');
  });

  it('deletes finished rows older than the setting, by status; keeps waiting, recent and recently tried ones', async () => {
    const oldSent = await addRows(db.pool, 3, 'sent', 31);
    const oldFailed = await addRows(db.pool, 2, 'failed', 40);
    const oldBounced = await addRows(db.pool, 1, 'bounced', 31);
    const kept = [
      ...(await addRows(db.pool, 2, 'queued', 60)),
      ...(await addRows(db.pool, 2, 'sending', 60)),
      ...(await addRows(db.pool, 2, 'sent', 29)),
      ...(await addRows(db.pool, 1, 'bounced', 1)),
      // queued 60 days ago, retried until it failed yesterday: counted from the last attempt
      ...(await addRows(db.pool, 1, 'failed', 1, 60)),
    ];
    const { log, withCode } = capture();
    const counted: [string, number][] = [];
    const pruner = new OutboxPruner({ pool, keepMs: KEEP_30D, log, onPruned: (s, n) => counted.push([s, n]) });

    const result = await pruner.run();
    expect(result).toEqual({ count: 6, byStatus: { sent: 3, failed: 2, bounced: 1 }, error: null });
    expect(await existing(db.pool, [...oldSent, ...oldFailed, ...oldBounced])).toEqual([]);
    expect(await existing(db.pool, kept)).toEqual(kept);
    expect(Object.fromEntries(counted)).toEqual({ sent: 3, failed: 2, bounced: 1 });
    expect(withCode('OUTBOX_PRUNED')).toEqual([
      expect.objectContaining({ level: 'info', count: 6, byStatus: { sent: 3, failed: 2, bounced: 1 }, keep: '30d' }),
    ]);

    // nothing more to do: no line, no count
    expect(await pruner.run()).toMatchObject({ count: 0, error: null });
    expect(withCode('OUTBOX_PRUNED')).toHaveLength(1);
    expect(counted).toHaveLength(3);
    expect(withCode('OUTBOX_PRUNE_FAILED')).toEqual([]);

    // its timeouts were the transaction's own: the connection is back to the pool's settings
    const { rows } = await pool.query(
      "select current_setting('lock_timeout') as lock, current_setting('statement_timeout') as st",
    );
    expect(rows[0]).toEqual({ lock: '0', st: '15s' });
  });

  it('works in batches of 500, oldest first, and a turn goes on until none is left', async () => {
    const ids = [...(await addRows(db.pool, 700, 'sent', 50)), ...(await addRows(db.pool, 534, 'sent', 40))];
    const first = await pruneOutbox(pool, {
      olderThanMs: KEEP_30D,
      limit: 500,
      lockTimeoutMs: 250,
      statementTimeoutMs: 10_000,
    });
    expect(first).toEqual({ sent: 500 });
    const left = await existing(db.pool, ids);
    expect(left).toHaveLength(734);
    // the 500 oldest went: what is left is the other 200 of 50 days and every row of 40 days
    expect(left).toEqual(ids.slice(500));

    const { log, withCode } = capture();
    expect(await new OutboxPruner({ pool, keepMs: KEEP_30D, log }).run()).toMatchObject({ count: 734, error: null });
    expect(await existing(db.pool, ids)).toEqual([]);
    expect(withCode('OUTBOX_PRUNED')).toMatchObject([{ count: 734, byStatus: { sent: 734 } }]);
  });

  it('skips a row another transaction holds instead of waiting for it, and takes it at a later turn', async () => {
    const ids = await addRows(db.pool, 5, 'sent', 31);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      // what a bounce being marked does to a sent row
      await holder.query("update outbox set last_reply = 'being bounced' where id = $1", [ids[2]]);
      const { log } = capture();
      const pruner = new OutboxPruner({ pool, keepMs: KEEP_30D, log });
      const result = await Promise.race([pruner.run(), sleep(5_000).then(() => 'waited for the lock' as const)]);
      expect(result).toMatchObject({ count: 4, error: null });
      expect(await existing(db.pool, ids)).toEqual([ids[2]]);
      await holder.query('commit');
      expect(await pruner.run()).toMatchObject({ count: 1, byStatus: { sent: 1 } });
      expect(await existing(db.pool, ids)).toEqual([]);
    } finally {
      await holder.query('rollback').catch(() => {});
      await holder.end();
    }
  });

  it('a lock on the table ends the turn within lock_timeout (OUTBOX_PRUNE_FAILED, a warning); it never throws', async () => {
    const ids = await addRows(db.pool, 3, 'sent', 31);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table outbox in access exclusive mode');
      const { log, withCode } = capture();
      const pruner = new OutboxPruner({ pool, keepMs: KEEP_30D, log });
      const started = Date.now();
      const result = await Promise.race([pruner.run(), sleep(5_000).then(() => 'waited for the lock' as const)]);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(result).toMatchObject({ count: 0, error: expect.objectContaining({ code: '55P03' }) });
      expect(withCode('OUTBOX_PRUNE_FAILED')).toEqual([
        expect.objectContaining({ level: 'warn', pgCode: '55P03', err: expect.stringMatching(/lock timeout/) }),
      ]);
      expect(withCode('OUTBOX_PRUNED')).toEqual([]);
      await holder.query('commit');
      // the next turn does the work
      expect(await pruner.run()).toMatchObject({ count: 3, error: null });
    } finally {
      await holder.query('rollback').catch(() => {});
      await holder.end();
    }
    expect(await existing(db.pool, ids)).toEqual([]);
  });

  it('a database that is gone is a warning, not a crash', async () => {
    const dead = createPool({ connectionString: inSchema('postgres://nobody@127.0.0.1:1/none', 'ticketmx'), max: 1 });
    const { log, withCode } = capture();
    try {
      const result = await new OutboxPruner({ pool: dead, keepMs: KEEP_30D, log }).run();
      expect(result).toMatchObject({ count: 0, error: expect.any(Error) });
      expect(withCode('OUTBOX_PRUNE_FAILED')).toEqual([
        expect.objectContaining({ level: 'warn', err: expect.stringMatching(/ECONNREFUSED/) }),
      ]);
    } finally {
      await dead.end();
    }
  });

  it('keepMs 0 (OUTBOX_KEEP_SENT=off) deletes nothing and sets no timer', async () => {
    const ids = await addRows(db.pool, 3, 'sent', 400);
    const { log, withCode } = capture();
    const pruner = new OutboxPruner({ pool, keepMs: 0, log, intervalMs: 20 });
    pruner.start();
    expect((pruner as unknown as { timer: unknown }).timer).toBeNull();
    expect(await pruner.run()).toMatchObject({ count: 0, error: null });
    await pruner.close();
    expect(await existing(db.pool, ids)).toEqual(ids);
    expect(withCode('OUTBOX_PRUNED')).toEqual([]);
  });

  it('runs at start and on its timer (unref’d); after close nothing more is deleted', async () => {
    const first = await addRows(db.pool, 2, 'sent', 31);
    const { log } = capture();
    const pruner = new OutboxPruner({ pool, keepMs: KEEP_30D, log, intervalMs: 50 });
    pruner.start();
    expect((pruner as unknown as { timer: NodeJS.Timeout }).timer.hasRef()).toBe(false);
    await expect.poll(() => existing(db.pool, first), { timeout: 5_000, interval: 20 }).toEqual([]);
    const second = await addRows(db.pool, 2, 'failed', 31);
    await expect.poll(() => existing(db.pool, second), { timeout: 5_000, interval: 20 }).toEqual([]);
    await pruner.close();
    const third = await addRows(db.pool, 2, 'sent', 31);
    await sleep(300); // six intervals
    expect(await existing(db.pool, third)).toEqual(third);
  });
});

describe('serve prunes', () => {
  let db: TestDatabase;
  let server: TestServer | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('nothing with OUTBOX_KEEP_SENT=off', async () => {
    const ids = await addRows(db.pool, 3, 'sent', 400);
    server = await startTestServer(db.url, { OUTBOX_KEEP_SENT: 'off' });
    await sleep(500);
    expect(await existing(db.pool, ids)).toEqual(ids);
    expect(server.logsWithCode('OUTBOX_PRUNED')).toEqual([]);
    expect(server.logsWithCode('SERVICE_STARTED')[0]).toMatchObject({
      settings: { OUTBOX_KEEP_SENT: '0 (off: kept for ever)' },
    });
    await server.close();
    server = undefined;
  });

  it('at start, what is older than OUTBOX_KEEP_SENT (default 30d), counted in /metrics', async () => {
    await db.pool.query('delete from outbox');
    const old = [...(await addRows(db.pool, 501, 'sent', 31)), ...(await addRows(db.pool, 2, 'bounced', 45))];
    const recent = await addRows(db.pool, 2, 'sent', 20);
    server = await startTestServer(db.url);
    await expect.poll(() => existing(db.pool, old), { timeout: 10_000 }).toEqual([]);
    expect(await existing(db.pool, recent)).toEqual(recent);
    await expect
      .poll(() => server!.logsWithCode('OUTBOX_PRUNED'), { timeout: 5_000 })
      .toMatchObject([{ count: 503, byStatus: { sent: 501, failed: 0, bounced: 2 }, keep: '30d' }]);
    const metrics = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^ticketmx_outbox_pruned_total\{status="sent"\} 501$/m);
    expect(metrics).toMatch(/^ticketmx_outbox_pruned_total\{status="bounced"\} 2$/m);
    expect(metrics).toMatch(/^ticketmx_outbox_pruned_total\{status="failed"\} 0$/m);
  });
});

describe('outbox run prunes', () => {
  let db: TestDatabase;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmx-run-prune-'));
    env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru', DATA_DIR: dataDir });
  });
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await db.pool.query('delete from outbox');
  });

  it('--once: one turn, what is older than OUTBOX_KEEP_SENT goes, recent rows stay; output unchanged', async () => {
    const old = [...(await addRows(db.pool, 3, 'sent', 31)), ...(await addRows(db.pool, 2, 'failed', 40))];
    const recent = await addRows(db.pool, 2, 'bounced', 2);
    const r = await runCli(['outbox', 'run', '--once'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('sent 0, deferred 0, failed 0');
    expect(await existing(db.pool, old)).toEqual([]);
    expect(await existing(db.pool, recent)).toEqual(recent);
    // the setting is honoured: 1d takes the 2-day-old rows too; off takes nothing
    const older = await addRows(db.pool, 2, 'sent', 400);
    expect((await runCli(['outbox', 'run', '--once'], { ...env, OUTBOX_KEEP_SENT: 'off' })).code).toBe(0);
    expect(await existing(db.pool, older)).toEqual(older);
    expect((await runCli(['outbox', 'run', '--once'], { ...env, OUTBOX_KEEP_SENT: '1d' })).code).toBe(0);
    expect(await existing(db.pool, [...older, ...recent])).toEqual([]);
  });

  it('running: prunes at start, logs OUTBOX_PRUNED, and stops on SIGTERM', async () => {
    const old = await addRows(db.pool, 4, 'sent', 31);
    const recent = await addRows(db.pool, 1, 'sent', 1);
    const child = spawnCli(['outbox', 'run'], env);
    try {
      await expect.poll(() => existing(db.pool, old), { timeout: 30_000 }).toEqual([]);
      await expect.poll(() => child.output(), { timeout: 5_000 }).toContain('"code":"OUTBOX_PRUNED"');
      expect(child.output()).toMatch(/"code":"OUTBOX_PRUNED"[^\n]*"count":4/);
      expect(await existing(db.pool, recent)).toEqual(recent);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});

describe('threading outlives the outbox rows', () => {
  let db: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    // no OUTBOUND_SMTP_URL: each notification is written to DATA_DIR/outbox/<id>.eml
    server = await startTestServer(db.url, { NOTIFY_STAFF_TO: STAFF, TICKET_MAX_MESSAGES_PER_HOUR: '0' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const sentMail = async (id: string) => {
    await waitForStatus(db.pool, id, 'sent');
    return readMail(fs.readFileSync(path.join(server.dataDir, 'outbox', `${id}.eml`)));
  };
  const staffRows = async (ticketId: string) =>
    (
      await db.pool.query<{ id: string }>('select id from outbox where ticket_id = $1 and recipient = $2 order by id', [
        ticketId,
        STAFF,
      ])
    ).rows.map((r) => r.id);
  const requesterWrites = async (
    ticketId: string,
    text: string,
    to = `support+${ticketId}@flamecrm.ru`,
    headers: string[] = [],
  ) => {
    const r = await deliver(server.port, {
      from: 'client@example.ru',
      to: [to],
      message: buildMessage({
        from: 'client@example.ru',
        to,
        subject: `Re: [${ticketId}] Printer`,
        body: text,
        headers,
      }),
    });
    expect(r.short, r.text).toBe('250 2.0.0');
  };

  it('a notification after the earlier ones were pruned carries their Message-IDs in References', async () => {
    const created = await withTransaction(db.pool, (tx) =>
      createTicketWithMessage(
        tx,
        { subject: 'Printer', requester: 'client@example.ru', message: { text: 'It is on fire.' }, source: 'cli' },
        notifyRules({
          notifyStaffTo: [STAFF],
          notifyRequester: true,
          mailDomains: ['flamecrm.ru'],
          crmWebhookUrl: null,
        }),
      ),
    );
    const ticketId = created.ticket.id;
    const first = await sentMail(created.outboxIds[0]!);
    await requesterWrites(ticketId, 'Still on fire.');
    const secondId = (await staffRows(ticketId)).at(-1)!;
    const second = await sentMail(secondId);
    expect(second.references).toEqual([first.messageId]);

    // both rows a year old: pruned
    await db.pool.query(
      `update outbox set created_at = now() - interval '1 year', last_attempt_at = now() - interval '1 year',
                         sent_at = now() - interval '1 year' where ticket_id = $1`,
      [ticketId],
    );
    const { log } = capture();
    expect(await new OutboxPruner({ pool: db.pool, keepMs: KEEP_30D, log }).run()).toMatchObject({ count: 2 });
    expect(await staffRows(ticketId)).toEqual([]);

    await requesterWrites(ticketId, 'Now it is smoking.');
    const third = await sentMail((await staffRows(ticketId)).at(-1)!);
    expect(third.references).toEqual([first.messageId, second.messageId]);
    expect(third.inReplyTo).toBe(second.messageId);

    // a reply to the bare support@ address still finds the ticket by the pruned notification's Message-ID
    const { rows: before } = await db.pool.query(
      'select count(*)::int as n from ticket_messages where ticket_id = $1',
      [ticketId],
    );
    await requesterWrites(ticketId, 'Out now.', 'support@flamecrm.ru', [`In-Reply-To: ${first.messageId}`]);
    const { rows: after } = await db.pool.query('select count(*)::int as n from ticket_messages where ticket_id = $1', [
      ticketId,
    ]);
    expect(after[0].n).toBe(before[0].n + 1);
  });
});

describe('migration 0009', () => {
  let empty: Awaited<ReturnType<typeof createEmptyDatabase>>;
  let client: pg.Client;
  let dir: string;

  beforeAll(async () => {
    empty = await createEmptyDatabase();
    // an installation at 0008 that has sent a notification
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-migrations-'));
    for (const m of await readMigrations())
      if (m.id <= 8) fs.copyFileSync(path.join(MIGRATIONS_DIR, m.name), path.join(dir, m.name));
    const url = inSchema(empty.plainUrl, 'ticketmx');
    await migrate(url, { dir });
    client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("insert into tickets (id, subject, requester) values ('TKT-7', 'Old', 'client@example.ru')");
    await client.query(
      `select queue_outbox('[{"kind": "mail", "event": "ticket_created", "ticket_id": "TKT-7",
                             "recipient": "staff@helpdesk.test", "payload": {"messageId": "<notify-TKT-7-1@flamecrm.ru>"}}]')`,
    );
    expect(await migrate(url)).toContain('0009_outbox_prune.sql'); // and any later one
  });
  afterAll(async () => {
    await client?.end();
    await empty?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('copies the recipient of every notification and leaves no foreign key onto the outbox', async () => {
    const { rows } = await client.query('select message_id, ticket_id, recipient from notification_messages');
    expect(rows).toEqual([
      { message_id: '<notify-TKT-7-1@flamecrm.ru>', ticket_id: 'TKT-7', recipient: 'staff@helpdesk.test' },
    ]);
    const fks = await client.query(
      "select conname from pg_constraint where contype = 'f' and confrelid = 'ticketmx.outbox'::regclass",
    );
    expect(fks.rows).toEqual([]);
    // and the outbox row can go
    await client.query("update outbox set status = 'sent', sent_at = now() - interval '40 days'");
    await client.query('delete from outbox');
  });

  it('queue_outbox records the recipient; a notification row with an outbox id but none is refused', async () => {
    await client.query(
      `select queue_outbox('[{"kind": "mail", "event": "staff_reply", "ticket_id": "TKT-7",
                             "recipient": "client@example.ru", "payload": {"messageId": "<notify-TKT-7-2@flamecrm.ru>"}}]')`,
    );
    const { rows } = await client.query(
      "select recipient from notification_messages where message_id = '<notify-TKT-7-2@flamecrm.ru>'",
    );
    expect(rows).toEqual([{ recipient: 'client@example.ru' }]);
    await expect(
      client.query(
        "insert into notification_messages (message_id, ticket_id, outbox_id) values ('<x@y>', 'TKT-7', 99)",
      ),
    ).rejects.toThrow(/notification_messages_recipient/);
  });

  it('gives the prune an index: with a large outbox of recent rows, the prune walks outbox_finished', async () => {
    await client.query(
      `insert into outbox (kind, event, ticket_id, recipient, status, created_at, last_attempt_at, sent_at)
       select 'mail', 'staff_reply', 'TKT-7', 'r@example.ru', 'sent', now() - make_interval(days => d),
              now() - make_interval(days => d), now() - make_interval(days => d)
         from generate_series(1, 20000) g, lateral (select case when g <= 5 then 40 else 1 end as d) x`,
    );
    await client.query('analyze outbox');
    const scans = async () =>
      (
        await client.query<{ n: string }>(
          "select idx_scan as n from pg_stat_user_indexes where indexrelname = 'outbox_finished'",
        )
      ).rows[0]!.n;
    const before = Number(await scans());
    const pool = createPool({ connectionString: inSchema(empty.plainUrl, 'ticketmx'), max: 1 });
    try {
      const b = { olderThanMs: KEEP_30D, limit: 500, lockTimeoutMs: 250, statementTimeoutMs: 10_000 };
      expect(await pruneOutbox(pool, b)).toEqual({ sent: 5 });
      await pool.query('select pg_stat_force_next_flush()');
    } finally {
      await pool.end();
    }
    await expect.poll(async () => Number(await scans()), { timeout: 5_000 }).toBeGreaterThan(before);
  });
});
