// Bring your own tickets: a Prisma-style "SupportTicket" table of the CRM (camelCase columns, an
// enum status, a cuid key and a separate number) behind ticketmx.tickets, installed with
// deploy/crm-view.sql. Replies land against it through SMTP; what the CRM closes or deletes is
// refused at RCPT; the CLI creates, lists and closes tickets through the view.
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/paths.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { PRISMA_DDL } from '../helpers/crm.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver, SmtpClient } from '../helpers/smtp-client.js';

let db: TestDatabase;
let crm: pg.Client;
let server: TestServer;
let env: NodeJS.ProcessEnv;

const crmTicket = (id: string, number: number, status: string, deleted = false) =>
  crm.query(
    `insert into "SupportTicket" ("id", "number", "title", "customerEmail", "status", "updatedAt", "deletedAt")
     values ($1, $2, $3, 'Client@Example.ru', $4, now(), $5)`,
    [id, number, `CRM ticket ${number}`, status, deleted ? new Date() : null],
  );

beforeAll(async () => {
  db = await createTestDatabase();
  // the CRM's own connection: its search_path, its tables in public
  crm = new pg.Client({ connectionString: db.plainUrl });
  await crm.connect();
  await crm.query(PRISMA_DDL);
  await crmTicket('ckv1a2b3c4d5e6f7g8h9i0j1k', 12345, 'OPEN');
  await crmTicket('ckv1a2b3c4d5e6f7g8h9i0j2k', 12346, 'SOLVED');
  await crmTicket('ckv1a2b3c4d5e6f7g8h9i0j3k', 12347, 'CLOSED');
  await crmTicket('ckv1a2b3c4d5e6f7g8h9i0j4k', 12348, 'OPEN', true);
  await crmTicket('ckv1a2b3c4d5e6f7g8h9i0j5k', 12349, 'PENDING');
  await crm.query(`select setval(pg_get_serial_sequence('"SupportTicket"', 'number'), 12349)`);
  await crm.query(fs.readFileSync(path.join(PROJECT_ROOT, 'deploy', 'crm-view.sql'), 'utf8'));
  server = await startTestServer(db.url, { TICKET_CLOSED_STATUSES: 'CLOSED' });
  env = cleanEnv({ DATABASE_URL: db.plainUrl, MAIL_DOMAINS: 'flamecrm.ru', TICKET_CLOSED_STATUSES: 'CLOSED' });
});

afterAll(async () => {
  await server?.close();
  await crm?.end();
  await db?.drop();
});

const reply = (to: string, body = 'Thanks, it works.', extra: Parameters<typeof buildMessage>[0] = {}) =>
  deliver(server.port, {
    from: 'client@example.ru',
    to: [to],
    message: buildMessage({ from: 'Client <client@example.ru>', to, body, ...extra }),
  });

async function rcpt(to: string) {
  const client = await SmtpClient.connect(server.port);
  try {
    await client.command('EHLO mail.example.ru');
    await client.command('MAIL FROM:<client@example.ru>');
    return await client.command(`RCPT TO:<${to}>`);
  } finally {
    await client.quit();
  }
}

describe('the CRM\'s "SupportTicket" behind ticketmx.tickets', () => {
  it('replaced our table by a view', async () => {
    const { rows } = await db.pool.query("select relkind::text from pg_class where oid = 'ticketmx.tickets'::regclass");
    expect(rows).toEqual([{ relkind: 'v' }]);
  });

  it.each([
    ['support+TKT-12345@flamecrm.ru', '250 2.1.5', 'RCPT_TICKET'],
    ['support+tkt-12346@flamecrm.ru', '250 2.1.5', 'RCPT_TICKET'], // SOLVED still takes replies
    ['support+TKT-12349@flamecrm.ru', '250 2.1.5', 'RCPT_TICKET'], // PENDING: not listed, so it takes mail
    ['support+TKT-12347@flamecrm.ru', '550 5.1.1', 'RCPT_TICKET_CLOSED'],
    ['support+TKT-12348@flamecrm.ru', '550 5.1.1', 'RCPT_UNKNOWN_TICKET'], // soft-deleted in the CRM
    ['support+TKT-99999@flamecrm.ru', '550 5.1.1', 'RCPT_UNKNOWN_TICKET'],
  ])('RCPT TO:<%s> → %s (%s)', async (to, expected, code) => {
    const r = await rcpt(to);
    expect(r.short).toBe(expected);
    expect(server.logsWithCode(code).some((l) => l.rcpt === to)).toBe(true);
  });

  it('says why a closed ticket refuses', async () => {
    expect((await rcpt('support+TKT-12347@flamecrm.ru')).text).toBe(
      'Ticket TKT-12347 is closed and takes no more replies',
    );
  });

  it('stores a reply against the CRM ticket, the customer recognised as its requester', async () => {
    const r = await reply('support+TKT-12345@flamecrm.ru');
    expect(r.short).toBe('250 2.0.0');
    const { rows } = await db.pool.query(
      "select ticket_id, author_role, reply_text from ticket_messages where reply_text = 'Thanks, it works.'",
    );
    expect(rows).toEqual([{ ticket_id: 'TKT-12345', author_role: 'requester', reply_text: 'Thanks, it works.' }]);
  });

  it('finds the CRM ticket of mail to the bare support@ address, and refuses it when closed', async () => {
    const open = await reply('support@flamecrm.ru', 'Via subject.', { subject: 'Re: [TKT-12346] CRM ticket' });
    expect(open.short).toBe('250 2.0.0');
    const closed = await reply('support@flamecrm.ru', 'Too late.', { subject: 'Re: [TKT-12347] CRM ticket' });
    expect(closed.short).toBe('550 5.1.1');
    expect(closed.text).toBe('Ticket TKT-12347 is closed and takes no more replies');
    expect(server.logsWithCode('DATA_TICKET_CLOSED')).toHaveLength(1);
  });

  it('refuses a ticket from the moment the CRM closes or deletes it', async () => {
    expect((await reply('support+TKT-12349@flamecrm.ru', 'Before closing.')).short).toBe('250 2.0.0');
    await crm.query(`update "SupportTicket" set "status" = 'CLOSED' where "number" = 12349`);
    expect((await reply('support+TKT-12349@flamecrm.ru', 'After closing.')).short).toBe('550 5.1.1');
    await crm.query(`delete from "SupportTicket" where "number" = 12349`);
    expect((await rcpt('support+TKT-12349@flamecrm.ru')).text).toBe('No such ticket TKT-12349');
    // what was stored stays: ticket messages name their ticket, they do not depend on the CRM's row
    const { rows } = await db.pool.query("select reply_text from ticket_messages where ticket_id = 'TKT-12349'");
    expect(rows).toEqual([{ reply_text: 'Before closing.' }]);
  });

  it('looks tickets up through the index on the CRM table, not by reading all of it', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('set enable_seqscan = off');
      const { rows } = await client.query("explain select * from tickets where id = 'TKT-12345'");
      expect(rows.map((r) => r['QUERY PLAN']).join('\n')).toContain('SupportTicket_ticketmx_id_idx');
    } finally {
      await client.query('reset enable_seqscan');
      client.release();
    }
  });
});

describe('the CLI on the CRM view', () => {
  it('ticket create writes the CRM row: the CRM numbers it and picks its key', async () => {
    const created = await runCli(
      ['ticket', 'create', '--subject', 'From the CLI', '--requester', 'new@example.ru', '--json'],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({
      ticket: { id: 'TKT-12350', subject: 'From the CLI', requester: 'new@example.ru', status: 'OPEN' },
      replyAddress: 'support+TKT-12350@flamecrm.ru',
    });
    const { rows } = await crm.query(
      `select "id", "title", "status"::text from "SupportTicket" where "number" = 12350`,
    );
    expect(rows).toEqual([{ id: expect.stringMatching(/^c[0-9a-f]{24}$/), title: 'From the CLI', status: 'OPEN' }]);
    expect((await reply('support+TKT-12350@flamecrm.ru')).short).toBe('250 2.0.0');
  });

  it('ticket create --id is refused: the CRM numbers its tickets', async () => {
    const r = await runCli(['ticket', 'create', '--subject', 'x', '--requester', 'a@example.ru', '--id', 'TKT-5'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the CRM numbers its tickets');
  });

  it('ticket close sets the CRM status (first of TICKET_CLOSED_STATUSES); mail is refused from then on', async () => {
    const closed = await runCli(['ticket', 'close', 'tkt-12345'], env);
    expect(closed.code, closed.stderr).toBe(0);
    expect(closed.stdout).toContain('TKT-12345 closed (CLOSED)');
    const { rows } = await crm.query(`select "status"::text from "SupportTicket" where "number" = 12345`);
    expect(rows).toEqual([{ status: 'CLOSED' }]);
    expect((await rcpt('support+TKT-12345@flamecrm.ru')).short).toBe('550 5.1.1');
    const again = await runCli(['ticket', 'close', 'TKT-12345'], env);
    expect(again.stdout).toContain('TKT-12345 was already closed (CLOSED)');
  });

  it('ticket list --status shows the CRM statuses, compared without case', async () => {
    const r = await runCli(['ticket', 'list', '--status', 'closed', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const ids = (JSON.parse(r.stdout) as { tickets: { id: string }[] }).tickets.map((t) => t.id).sort();
    expect(ids).toEqual(['TKT-12345', 'TKT-12347']);
  });

  it('ticket show reads the CRM ticket and the replies stored for it', async () => {
    const r = await runCli(['ticket', 'show', 'TKT-12345', '--json'], env);
    expect(JSON.parse(r.stdout)).toMatchObject({
      ticket: { id: 'TKT-12345', subject: 'CRM ticket 12345', status: 'CLOSED' },
      messages: [{ text: 'Thanks, it works.', role: 'requester' }],
    });
  });

  it('a view without a write path gets a clear answer, not a stack of SQL', async () => {
    await crm.query('drop trigger crm_tickets_write on ticketmx.tickets');
    try {
      const close = await runCli(['ticket', 'close', 'TKT-12346'], env);
      expect(close.code).toBe(1);
      expect(close.stderr).toMatch(/ticket close: tickets is a view over the CRM's tickets and does not take this/);
      const create = await runCli(['ticket', 'create', '--subject', 'x', '--requester', 'a@example.ru'], env);
      expect(create.code).toBe(1);
      expect(create.stderr).toMatch(/ticket create: tickets is a view over the CRM's tickets and does not take this/);
    } finally {
      await crm.query(
        'create trigger crm_tickets_write instead of insert or update on ticketmx.tickets ' +
          'for each row execute function ticketmx.crm_tickets_write()',
      );
    }
  });
});
