// The one promise under trouble: PostgreSQL stopped mid-run, or too slow for our deadline, gives
// 451; once it is back, the sender's retry is stored exactly once. Past the deadline the statement
// is cancelled, and a commit that could not be cancelled is logged and recognised on retry.
// This file runs its own embedded PostgreSQL, since it stops and restarts it.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, openEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { DEFAULT_SCHEMA, inSchema } from '../../src/db/schema.js';
import { counts, insertTestTicket } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, SmtpClient } from '../helpers/smtp-client.js';
import { startTcpProxy, throughProxy } from '../helpers/tcp-proxy.js';

let dataDir: string;
let postgres: EmbeddedPostgres;
let server: TestServer;
let pool: pg.Pool;
const API_TOKEN = `tmx_${'d'.repeat(40)}`;

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-down-'));
  postgres = await openEmbeddedPostgres(dataDir);
  await migrate(postgres.url);
  pool = new pg.Pool({ connectionString: inSchema(postgres.url, DEFAULT_SCHEMA), max: 2 });
  pool.on('error', () => {});
  await insertTestTicket(pool, 'TKT-7');
  server = await startTestServer(postgres.url, { HOOK_TIMEOUT_MS: '1500', API_TOKEN: API_TOKEN });
});

afterAll(async () => {
  await server?.close();
  await pool?.end();
  await postgres?.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
});

async function send(message: string, rcpt = 'support+TKT-7@flamecrm.ru') {
  const client = await SmtpClient.connect(server.port);
  await client.command('EHLO client.example');
  await client.command('MAIL FROM:<ivan@flamecrm.ru>');
  const r = await client.command(`RCPT TO:<${rcpt}>`);
  if (r.code !== 250) {
    await client.quit();
    return r;
  }
  const done = await client.data(message);
  await client.quit();
  return done;
}

describe('PostgreSQL stopped mid-run', () => {
  it('answers 451 at DATA and RCPT while it is down, and stores the retry exactly once when it is back', async () => {
    expect((await send(buildMessage({ messageId: '<before@x>' }))).short).toBe('250 2.0.0');

    // a transaction already past RCPT when the database goes away
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO client.example');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    expect((await client.command('RCPT TO:<support+TKT-7@flamecrm.ru>')).short).toBe('250 2.1.5');
    await postgres.stop();

    const message = buildMessage({ messageId: '<during@x>', body: 'sent while the database was down' });
    const during = await client.data(message);
    expect(during.short).toBe('451 4.3.0');
    expect(during.text).toMatch(/\[DB_UNAVAILABLE\]$/);
    await client.quit();

    // a new transaction cannot even look its ticket up
    const rcpt = await send(message);
    expect(rcpt.short).toBe('451 4.3.0');
    expect(server.logsWithCode('RCPT_TEMPFAIL').at(-1)).toMatchObject({ ticket: 'TKT-7', err: expect.any(String) });

    const health = await fetch(`http://127.0.0.1:${server.httpPort}/healthz`);
    expect(health.status).toBe(503);
    // a stable code, not PostgreSQL's message: that is in the log
    expect(await health.json()).toEqual({ status: 'unavailable', database: 'DB_UNAVAILABLE' });
    expect(server.logsWithCode('HEALTH_FAILED').at(-1)).toMatchObject({
      tag: 'DB_UNAVAILABLE',
      err: expect.any(String),
    });
    // the HTTP API: a temporary problem, never a 500 or a 404
    const api = await fetch(`http://127.0.0.1:${server.httpPort}/v1/tickets/TKT-7`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect([api.status, api.headers.get('retry-after'), api.headers.get('content-type')]).toEqual([
      503,
      '5',
      'application/problem+json; charset=utf-8',
    ]);
    expect(await api.json()).toMatchObject({ code: 'DATABASE_UNAVAILABLE', status: 503 });
    await expect
      .poll(() => server.logsWithCode('API_REQUEST').at(-1))
      .toMatchObject({ status: 503, problem: 'DATABASE_UNAVAILABLE' });

    postgres = await openEmbeddedPostgres(dataDir, { port: postgres.port });
    const retry = await send(message);
    expect(retry.short).toBe('250 2.0.0');
    expect(retry.text).toMatch(/^Ok: committed as \d+$/);
    const again = await send(message);
    expect(again.text).toMatch(/^Ok: already committed as \d+$/);

    const { rows } = await pool.query('select message_id from ticket_messages order by id');
    expect(rows.map((r) => r.message_id)).toEqual(['<before@x>', '<during@x>']);
    expect(await counts(pool)).toEqual({ raw: 2, tm: 2, um: 0 });
    expect((await fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).status).toBe(200);
  });
});

describe('a lock on our tables held elsewhere', () => {
  it('answers 451 [DB_LOCKED] after a second, stores nothing, and stores the retry once the lock is gone', async () => {
    // a deadline far beyond store_messages' lock_timeout (1 s): the lock, not the deadline, answers
    const patient = await startTestServer(postgres.url, { HOOK_TIMEOUT_MS: '20000' });
    const locker = await pool.connect();
    try {
      const before = await counts(pool);
      const message = buildMessage({ messageId: '<locked-out@x>' });
      const deliver = async () => {
        const client = await SmtpClient.connect(patient.port);
        await client.command('EHLO client.example');
        await client.command('MAIL FROM:<ivan@flamecrm.ru>');
        await client.command('RCPT TO:<support+TKT-7@flamecrm.ru>');
        const done = await client.data(message);
        await client.quit();
        return done;
      };
      await locker.query('begin');
      await locker.query('lock table ticket_messages in access exclusive mode');
      const first = await deliver();
      expect(first.short).toBe('451 4.3.0');
      expect(first.text).toMatch(/\[DB_LOCKED\]$/);
      await locker.query('rollback');
      expect(await counts(pool)).toEqual(before);
      expect((await deliver()).short).toBe('250 2.0.0');
    } finally {
      await locker.query('rollback').catch(() => {});
      locker.release();
      await patient.close();
    }
  });
});

describe('PostgreSQL slower than our deadline', () => {
  // A lock stands in for a PostgreSQL that is slow: store_messages' own lock_timeout (1 s, migration
  // 0008: a message stuck on a lock must not hold up the others) is off here, so that the wait lasts.
  beforeAll(async () => {
    await pool.query("alter function store_messages(bytea, jsonb, integer) set lock_timeout = '0'");
  });
  afterAll(async () => {
    await pool.query("alter function store_messages(bytea, jsonb, integer) set lock_timeout = '1s'");
  });

  it('answers 451 at RCPT when the ticket lookup hangs', async () => {
    const locker = await pool.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table tickets in access exclusive mode');
      const r = await send(buildMessage());
      expect(r.short).toBe('451 4.3.0');
      expect(r.text).toMatch(/\[DEADLINE\]$/);
    } finally {
      await locker.query('rollback');
      locker.release();
    }
  });

  it('answers 451 at DATA past the deadline, says the message may be stored, and cancels the statement', async () => {
    const before = await counts(pool);
    const message = buildMessage({ messageId: '<slow@x>' });
    const locker = await pool.connect();
    let first: Awaited<ReturnType<typeof send>>;
    try {
      await locker.query('begin');
      await locker.query('lock table ticket_messages in access exclusive mode');
      first = await send(message);
      expect(first.short).toBe('451 4.3.0');
      expect(first.text).toBe(
        'Temporary local problem: the message may have been stored; a retry is recognised [DEADLINE]',
      );
      // the lock is still held: the statement is gone because we cancelled it, not because it ran
      await expect.poll(() => server.logsWithCode('DATA_LATE_ABANDONED').length, { timeout: 10_000 }).toBe(1);
      expect(server.logsWithCode('DATA_LATE_ABANDONED')[0]!.err).toMatch(/canceling statement due to user request/);
      const { rows } = await pool.query(
        "select count(*)::int as n from pg_stat_activity where query like '%store_message%' and state = 'active' and pid <> pg_backend_pid()",
      );
      expect(rows[0].n).toBe(0);
    } finally {
      await locker.query('rollback');
      locker.release();
    }
    expect(server.logsWithCode('DATA_DEADLINE').at(-1)).toMatchObject({ reply: expect.stringMatching(/^451 4\.3\.0/) });
    const retry = await send(message);
    expect(retry.short).toBe('250 2.0.0');
    const after = await counts(pool);
    expect(after.tm - before.tm).toBe(1);
    const { rows } = await pool.query("select count(*)::int as n from ticket_messages where message_id = '<slow@x>'");
    expect(rows[0].n).toBe(1);
  });

  it('logs a commit that happens after the deadline (DATA_LATE_COMMIT), and the retry is that message', async () => {
    // The cancel cannot reach the server (the proxy refuses new connections, as a saturated or
    // half-partitioned server might), so the statement waiting for the lock commits after our 451.
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: postgres.port });
    const late = await startTestServer(throughProxy(postgres.url, proxy), { HOOK_TIMEOUT_MS: '1500' });
    try {
      const via = (m: string) => sendTo(late.port, m);
      expect((await via(buildMessage({ messageId: '<warm-up@x>' }))).short).toBe('250 2.0.0'); // a pooled connection
      const message = buildMessage({ messageId: '<late@x>' });
      const locker = await pool.connect();
      let first: Awaited<ReturnType<typeof send>>;
      try {
        await locker.query('begin');
        await locker.query('lock table ticket_messages in access exclusive mode');
        proxy.refuseNew = true;
        first = await via(message);
      } finally {
        await locker.query('rollback');
        locker.release();
      }
      expect(first.short).toBe('451 4.3.0');
      expect(first.text).toMatch(/may have been stored; a retry is recognised \[DEADLINE\]$/);
      await expect.poll(() => late.logsWithCode('DATA_LATE_COMMIT').length, { timeout: 10_000 }).toBe(1);
      const logged = late.logsWithCode('DATA_LATE_COMMIT')[0]!;
      expect(logged).toMatchObject({ level: 'warn', outcome: 'DATA_COMMITTED', messageId: '<late@x>' });
      proxy.refuseNew = false;
      const retry = await via(message);
      expect(retry.text).toBe(`Ok: already committed as ${logged.rawMessageId}`);
    } finally {
      await late.close();
      await proxy.close();
    }
  });
});

async function sendTo(port: number, message: string) {
  const client = await SmtpClient.connect(port);
  await client.command('EHLO client.example');
  await client.command('MAIL FROM:<ivan@flamecrm.ru>');
  const r = await client.command('RCPT TO:<support+TKT-7@flamecrm.ru>');
  const done = r.code === 250 ? await client.data(message) : r;
  await client.quit();
  return done;
}
