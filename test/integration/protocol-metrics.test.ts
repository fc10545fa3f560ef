// Outages must not look like refused mail: the 503 a pipelined DATA gets after its RCPT was
// refused (451 during an outage) is counted as a protocol consequence, apart from decisions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { SmtpClient } from '../helpers/smtp-client.js';

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  await insertTestTicket(db.pool, 'TKT-1');
  server = await startTestServer(db.url, { HOOK_TIMEOUT_MS: '1000' });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const metrics = async () => (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();

describe('protocol refusals are counted apart from decisions', () => {
  it('a 503 after a refused RCPT is a consequence; a DATA without RCPT is the client’s', async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO postfix.example');
    // as Postfix pipelines: the ticket lookup hits our deadline (451), the DATA gets 503
    const locker = await db.pool.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table tickets in access exclusive mode');
      const replies = await client.pipeline([
        'MAIL FROM:<ivan@flamecrm.ru>',
        'RCPT TO:<support+TKT-1@flamecrm.ru>',
        'DATA',
      ]);
      expect(replies.map((r) => r.short)).toEqual(['250 2.1.0', '451 4.3.0', '503 5.5.1']);
    } finally {
      await locker.query('rollback');
      locker.release();
    }
    await client.command('RSET');
    const unknown = await client.pipeline([
      'MAIL FROM:<ivan@flamecrm.ru>',
      'RCPT TO:<support+TKT-404@flamecrm.ru>',
      'DATA',
    ]);
    expect(unknown.map((r) => r.short)).toEqual(['250 2.1.0', '550 5.1.1', '503 5.5.1']);
    await client.command('RSET');
    const careless = await client.pipeline(['MAIL FROM:<ivan@flamecrm.ru>', 'DATA']);
    expect(careless.map((r) => r.short)).toEqual(['250 2.1.0', '503 5.5.1']);
    await client.quit();

    const text = await metrics();
    expect(text).not.toMatch(/ticketmx_smtp_decisions_total\{code="SMTP_PROTOCOL_REFUSED"/);
    expect(text).toMatch(/^ticketmx_smtp_protocol_refusals_total\{reply="503",kind="consequence"\} 2$/m);
    expect(text).toMatch(/^ticketmx_smtp_protocol_refusals_total\{reply="503",kind="client"\} 1$/m);
    expect(text).toMatch(/^ticketmx_smtp_decisions_total\{code="RCPT_TEMPFAIL",reply="451"\} 1$/m);
    expect(server.logsWithCode('SMTP_PROTOCOL_REFUSED').map((l) => l.kind)).toEqual([
      'consequence',
      'consequence',
      'client',
    ]);
  });
});

describe('RCPT ticket lookups', () => {
  it('asked by many sessions at the same moment share statements, and each session gets its own answer', async () => {
    await insertTestTicket(db.pool, 'TKT-2');
    const before = await metrics();
    const counted = (text: string, what: 'count' | 'sum') =>
      Number(new RegExp(`^ticketmx_rcpt_lookups_per_statement_${what} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    const clients = await Promise.all(Array.from({ length: 12 }, () => SmtpClient.connect(server.port)));
    for (const c of clients) {
      await c.command('EHLO postfix.example');
      await c.command('MAIL FROM:<ivan@flamecrm.ru>');
    }
    // the tickets table locked: the first lookup waits on it, the others queue behind it
    const locker = await db.pool.connect();
    await locker.query('begin');
    await locker.query('lock table tickets in access exclusive mode');
    const answers = clients.map((c, i) => c.command(`RCPT TO:<support+TKT-${[1, 2, 404][i % 3]}@flamecrm.ru>`));
    await new Promise((r) => setTimeout(r, 200));
    await locker.query('rollback');
    locker.release();
    expect((await Promise.all(answers)).map((r) => r.short)).toEqual(
      Array.from({ length: 12 }, (_, i) => (i % 3 === 2 ? '550 5.1.1' : '250 2.1.5')),
    );
    await Promise.all(clients.map((c) => c.quit()));
    const after = await metrics();
    expect(counted(after, 'sum') - counted(before, 'sum')).toBe(12);
    // the first alone, the eleven that came while it waited together (or, on a slow machine, those
    // that came later than 50 ms after the newest statement in one more: src/db/ticket-lookups.ts)
    const statements = counted(after, 'count') - counted(before, 'count');
    expect(statements).toBeGreaterThanOrEqual(2);
    expect(statements).toBeLessThanOrEqual(4);
  });
});
