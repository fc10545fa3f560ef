// Where the parts meet: defects a second review found between the pipeline, the outbox, the bounce
// path, the HTTP API and reprocess once they were merged. Each test failed before its fix.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bounceAddress } from '../../src/mail/address.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver, SmtpClient } from '../helpers/smtp-client.js';

const TOKEN = `tmx_${'r'.repeat(40)}`;
let db: TestDatabase;
let server: TestServer;
let verp: string;
let seq = 0;
const mid = () => `<review-${++seq}-${process.pid}@mail.example.ru>`;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, {
    AUTH_POLICY: 'monitor',
    TICKET_MAX_MESSAGES_PER_HOUR: '0',
    UNROUTED_MAX_BYTES_PER_NETWORK_PER_DAY: '200000',
    NOTIFY_STAFF_TO: 'info@flamecrm.ru',
    CRM_WEBHOOK_URL: 'http://127.0.0.1:9/crm/webhook',
    CRM_WEBHOOK_SECRET: 's'.repeat(40),
    API_TOKEN: TOKEN,
    // rows stay queued, so that the test counts what DATA queued
    OUTBOX_SEND_IN_SERVE: 'false',
  });
  await insertTestTicket(db.pool, 'TKT-7001', 'client@example.ru');
  const { rows } = await db.pool.query("select secret from outbox_keys where name = 'verp'");
  // a bounce address of ours: any customer finds one in the Return-Path of a notification
  verp = bounceAddress('424242', rows[0].secret, 'flamecrm.ru');
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

beforeEach(async () => {
  await db.pool.query(
    'truncate raw_messages, ticket_messages, unrouted_messages, attachments, unrouted_budget, outbox cascade',
  );
});

describe('mail to a VERP bounce address goes through the budget and its limits', () => {
  it('charges unrouted mail to a bounce address to the network daily budget (450 4.7.1 past it)', async () => {
    const replies: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await deliver(server.port, {
        ip: '127.0.5.1',
        from: 'x@flood.example',
        to: [verp],
        message: buildMessage({ to: verp, messageId: mid(), body: `${'z'.repeat(98)}\r\n`.repeat(450) }), // 45 KB
      });
      replies.push(r.short);
    }
    // the same six to postmaster@ give 250 ×4, then 450 4.7.1 (hostile.test.ts, defect 7)
    expect(replies).toContain('450 4.7.1');
  });

  it('keeps a report alone in its transaction: another recipient beside a bounce address is 452 4.5.3', async () => {
    const messageId = mid();
    const message = buildMessage({ from: 'client@example.ru', to: 'support+TKT-7001@flamecrm.ru', messageId });
    for (const order of [
      [verp, 'support+TKT-7001@flamecrm.ru'],
      ['support+TKT-7001@flamecrm.ru', verp],
      [verp, 'postmaster@flamecrm.ru'],
    ]) {
      const client = await SmtpClient.connect(server.port);
      try {
        await client.command('EHLO client.example.ru');
        await client.command('MAIL FROM:<client@example.ru>');
        expect((await client.command(`RCPT TO:<${order[0]}>`)).short).toMatch(/^250/);
        const second = await client.command(`RCPT TO:<${order[1]}>`);
        expect(second.short, order.join(' + ')).toBe('452 4.5.3');
      } finally {
        client.destroy();
      }
    }
    // nothing is lost: the sender sends the ticket's copy in a transaction of its own
    const r = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'client@example.ru',
      to: ['support+TKT-7001@flamecrm.ru'],
      message,
    });
    expect(r.short).toBe('250 2.0.0');
    const { rows } = await db.pool.query('select count(*)::int as n from ticket_messages where message_id = $1', [
      messageId,
    ]);
    expect(rows[0].n).toBe(1);
    expect(server.logsWithCode('RCPT_BOUNCE_MIXED').length).toBe(3);
  });
});

describe('a recipient refused for its own reason is a 550 whatever else the transaction holds', () => {
  // a 452 here sent the sender back to meet the 550 in a transaction of its own
  it.each([
    ['a bounce address', 'support+TKT-404@flamecrm.ru', 'RCPT_UNKNOWN_TICKET', () => verp],
    ['a bounce address', 'support+TKT-7002@flamecrm.ru', 'RCPT_TICKET_CLOSED', () => verp],
    ['a ticket', 'bounces+424242.forged@flamecrm.ru', 'RCPT_BAD_BOUNCE', () => 'support+TKT-7001@flamecrm.ru'],
    ['a ticket', 'bounces@flamecrm.ru', 'RCPT_BAD_BOUNCE', () => 'support+TKT-7001@flamecrm.ru'],
    ['postmaster@', 'bounces+1.x@flamecrm.ru', 'RCPT_BAD_BOUNCE', () => 'postmaster@flamecrm.ru'],
  ])('beside %s, RCPT TO:<%s> → 550 5.1.1 (%s)', async (_what, second, code, first) => {
    await db.pool.query(
      "insert into tickets (id, subject, requester, status) values ('TKT-7002', 'x', 'client@example.ru', 'closed') " +
        'on conflict do nothing',
    );
    const before = server.logsWithCode(code).length;
    const client = await SmtpClient.connect(server.port);
    try {
      await client.command('EHLO client.example.ru');
      await client.command('MAIL FROM:<client@example.ru>');
      expect((await client.command(`RCPT TO:<${first()}>`)).short).toBe('250 2.1.5');
      expect((await client.command(`RCPT TO:<${second}>`)).short).toBe('550 5.1.1');
    } finally {
      client.destroy();
    }
    expect(server.logsWithCode(code).length).toBe(before + 1);
  });
});

describe('two recipient addresses of one ticket are one message', () => {
  it('one message to support+TKT-n@ at two of MAIL_DOMAINS: one row, one webhook, one mail to staff', async () => {
    const r = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'client@example.ru',
      to: ['support+TKT-7001@flamecrm.ru', 'support+TKT-7001@support.flamecrm.ru'],
      message: buildMessage({ from: 'client@example.ru', to: 'support+TKT-7001@flamecrm.ru', messageId: mid() }),
    });
    expect(r.short).toBe('250 2.0.0');
    expect((await db.pool.query('select count(*)::int as n from ticket_messages')).rows[0].n).toBe(1);
    const { rows } = await db.pool.query('select kind, recipient from outbox order by id');
    // today: two webhook rows (two event ids for one message: the CRM cannot de-duplicate) and two mails
    expect(rows.map((x) => x.kind).sort()).toEqual(['mail', 'webhook']);
  });
});

describe('a repeated RCPT TO in one transaction', () => {
  const lookups = async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
    return Number(/^ticketmx_rcpt_lookups_per_statement_sum (\d+)$/m.exec(metrics)?.[1]);
  };

  it('is answered from the first route (logged repeat: true), without a second lookup or delivery', async () => {
    const before = await lookups();
    const logged = server.logsWithCode('RCPT_TICKET').length;
    const r = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'client@example.ru',
      to: ['support+TKT-7001@flamecrm.ru', 'SUPPORT+tkt-7001@FLAMECRM.RU'],
      message: buildMessage({ from: 'client@example.ru', to: 'support+TKT-7001@flamecrm.ru', messageId: mid() }),
    });
    expect(r.short).toBe('250 2.0.0');
    expect((await lookups()) - before).toBe(1);
    const rcpt = server.logsWithCode('RCPT_TICKET').slice(logged);
    expect(rcpt.map((l) => [l.rcpt, l.repeat])).toEqual([
      ['support+TKT-7001@flamecrm.ru', undefined],
      ['SUPPORT+tkt-7001@FLAMECRM.RU', true],
    ]);
    expect((await db.pool.query('select count(*)::int as n from ticket_messages')).rows[0].n).toBe(1);
    const { rows } = await db.pool.query('select kind from outbox order by id');
    expect(rows.map((x) => x.kind).sort()).toEqual(['mail', 'webhook']);
  });
});

describe('the HTTP API cleans or refuses what PostgreSQL cannot hold, never a 500', () => {
  const base = () => `http://127.0.0.1:${server.httpPort}`;
  const post = (path: string, body: unknown) =>
    fetch(`${base()}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('a NUL in a new ticket subject is a 201 (made well-formed) or a 422, never a 500', async () => {
    const res = await post('/v1/tickets', { subject: 'Printer\u0000 on fire', requester: 'client@example.ru' });
    expect(res.status).toBeLessThan(500);
  });

  it('a NUL in the author name of an answer is a 201 or a 422, never a 500', async () => {
    const res = await post('/v1/tickets/TKT-7001/messages', {
      text: 'On our way.',
      author: { address: 'anna@flamecrm.ru', name: 'Anna\u0000' },
    });
    expect(res.status).toBeLessThan(500);
  });

  it('after= past the range of a message id is a 422, never a 500', async () => {
    const res = await fetch(`${base()}/v1/tickets/TKT-7001/messages?after=9999999999999999999`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(422);
  });
});

describe('reprocess compares with the text as PostgreSQL holds it', () => {
  it('a stored message re-extracted unchanged reports 0 changed and writes no history', async () => {
    // HTML nested past MAX_HTML_NESTING falls back to the tag strip, whose entity decoder makes a
    // lone surrogate of &#xD800; (htmlparser2 would give U+FFFD); queries.ts stores it as U+FFFD
    const html = `${'<div>'.repeat(1001)}Hi &#xD800; there${'</div>'.repeat(1001)}`;
    const message = [
      'From: client@example.ru',
      'To: support+TKT-7001@flamecrm.ru',
      'Subject: Re: [TKT-7001] x',
      `Message-ID: ${mid()}`,
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8',
      '',
      html,
      '',
    ].join('\r\n');
    const r = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'client@example.ru',
      to: ['support+TKT-7001@flamecrm.ru'],
      message,
    });
    expect(r.short).toBe('250 2.0.0');
    const env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' });
    const first = await runCli(['reprocess', '--all'], env);
    const second = await runCli(['reprocess', '--all'], env);
    expect(second.stdout).toMatch(/: 0 changed/);
    expect(first.stdout).toMatch(/: 0 changed/);
    expect((await db.pool.query('select count(*)::int as n from reply_text_history')).rows[0].n).toBe(0);
  });
});
