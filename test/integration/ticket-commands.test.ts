// CLI parity on our own tickets table: ticket list (status filter, JSON), ticket close (and the
// server refusing the closed ticket at RCPT), ticket show's order (text and JSON alike), api-token create.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startTestServer } from '../helpers/server.js';
import { SmtpClient } from '../helpers/smtp-client.js';

let db: TestDatabase;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  db = await createTestDatabase();
  env = cleanEnv({ DATABASE_URL: db.plainUrl, MAIL_DOMAINS: 'flamecrm.ru' });
});
afterAll(async () => db?.drop());

const cli = async (...args: string[]) => {
  const r = await runCli(args, env);
  return { ...r, json: () => JSON.parse(r.stdout) };
};

describe('ticket list', () => {
  it('says so when there are no tickets', async () => {
    const r = await cli('ticket', 'list');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('no tickets yet');
  });

  it('lists tickets newest first, filters by status without case, and prints JSON for scripts', async () => {
    for (const subject of ['First', 'Second', 'Third'])
      expect((await cli('ticket', 'create', '--subject', subject, '--requester', 'c@example.ru')).code).toBe(0);
    await db.pool.query(
      "update tickets set created_at = created_at - (interval '1 minute' * (3 - substr(id, 5)::int))",
    );

    const text = await cli('ticket', 'list');
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual(['TKT-3', 'TKT-2', 'TKT-1']);
    expect(lines[0]).toMatch(/^TKT-3 {2}open {2}\d{4}-\d\d-\d\dT\d\d:\d\dZ {5}0 msg {2}c@example\.ru {2}Third$/);

    expect((await cli('ticket', 'close', 'TKT-2')).code).toBe(0);
    const closed = (await cli('ticket', 'list', '--status', 'CLOSED', '--json')).json();
    expect(closed).toEqual({
      tickets: [
        {
          id: 'TKT-2',
          subject: 'Second',
          requester: 'c@example.ru',
          status: 'closed',
          createdAt: expect.any(String),
          messages: 0,
          lastMessageAt: null,
        },
      ],
    });
    const open = (await cli('ticket', 'list', '--status', 'open', '--json')).json();
    expect(open.tickets.map((t: { id: string }) => t.id)).toEqual(['TKT-3', 'TKT-1']);
    const one = await cli('ticket', 'list', '--limit', '1');
    expect(one.stdout.trim().split('\n')).toHaveLength(1);
    expect(one.stderr).toContain('--limit N for more');
  });

  it.each([
    [['ticket', 'list', '--limit', '0'], /--limit must be a whole number/],
    [['ticket', 'list', '--status', ' '], /--status needs a status/],
    [['ticket', 'close'], /exactly one ticket id/],
    [['ticket', 'close', 'nope'], /not a ticket id/],
    // attack run 4, F-info-1: one number, one ticket
    [
      ['ticket', 'create', '--subject', 'S', '--requester', 'c@example.ru', '--id', 'TKT-0070'],
      /'TKT-0070' has leading zeros: a ticket id is written TKT-70/,
    ],
  ])('%j is a usage error', async (args, message) => {
    const r = await runCli(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('ticket close', () => {
  it('closes a ticket; the server refuses replies to it at RCPT from then on', async () => {
    expect(
      (await cli('ticket', 'create', '--subject', 'To close', '--requester', 'c@example.ru', '--id', 'TKT-70')).code,
    ).toBe(0);
    const server = await startTestServer(db.url);
    const rcpt = async () => {
      const client = await SmtpClient.connect(server.port);
      await client.command('EHLO mail.example.ru');
      await client.command('MAIL FROM:<c@example.ru>');
      const r = await client.command('RCPT TO:<support+TKT-70@flamecrm.ru>');
      await client.quit();
      return r;
    };
    try {
      expect((await rcpt()).short).toBe('250 2.1.5');
      const r = await cli('ticket', 'close', 'TKT-70', '--json');
      expect(r.code, r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ ticket: { id: 'TKT-70', status: 'closed' }, changed: true });
      const refused = await rcpt();
      expect(refused.short).toBe('550 5.1.1');
      expect(refused.text).toBe('Ticket TKT-70 is closed and takes no more replies');
      expect(server.logsWithCode('RCPT_TICKET_CLOSED')).toHaveLength(1);
    } finally {
      await server.close();
    }
    const again = await cli('ticket', 'close', 'TKT-70');
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('TKT-70 was already closed (closed)\n');
  });

  it('uses the first of TICKET_CLOSED_STATUSES, and knows the others as closed', async () => {
    const custom = cleanEnv({ ...env, TICKET_CLOSED_STATUSES: 'done,archived' });
    await cli('ticket', 'create', '--subject', 'Custom', '--requester', 'c@example.ru', '--id', 'TKT-71');
    await db.pool.query("update tickets set status = 'Archived' where id = 'TKT-71'");
    const already = await runCli(['ticket', 'close', 'TKT-71'], custom);
    expect(already.stdout).toContain('TKT-71 was already closed (Archived)');
    await cli('ticket', 'create', '--subject', 'Custom 2', '--requester', 'c@example.ru', '--id', 'TKT-72');
    expect((await runCli(['ticket', 'close', 'TKT-72'], custom)).stdout).toContain('TKT-72 closed (done)');
  });

  it('is an error for a ticket that does not exist', async () => {
    const r = await cli('ticket', 'close', 'TKT-404');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no such ticket TKT-404');
  });
});

describe('ticket show', () => {
  it('lists messages by received time, then id, in the text and in --json alike', async () => {
    expect(
      (await cli('ticket', 'create', '--subject', 'Order', '--requester', 'c@example.ru', '--id', 'TKT-90')).code,
    ).toBe(0);
    // ids are taken before commit: a message that committed late has a lower id than one before it
    const { rows } = await db.pool.query<{ id: string; tag: string }>(
      `insert into ticket_messages (ticket_id, idempotency_key, source, author_address, author_role, reply_text,
                                    full_text, rcpt_to, received_at)
       select 'TKT-90', 'order-' || tag, 'cli', 'c@example.ru', 'requester', 'message ' || tag, 'message ' || tag,
              '{}', timestamptz '2026-01-01 12:00:00Z' + at
         from (values ('c', interval '3 min'), ('a', interval '1 min'), ('b2', interval '2 min'),
                      ('b1', interval '2 min')) v(tag, at)
       returning id, substr(idempotency_key, 7) as tag`,
    );
    const idOf = Object.fromEntries(rows.map((r) => [r.tag, r.id]));
    // b2 and b1 were received at the same moment: the lower id first
    const expected = ['a', 'b2', 'b1', 'c'].map((t) => idOf[t]);
    const text = await cli('ticket', 'show', 'TKT-90');
    expect(text.code, text.stderr).toBe(0);
    expect([...text.stdout.matchAll(/^--- #(\d+) /gm)].map((m) => m[1])).toEqual(expected);
    for (const flags of [[], ['--full']]) {
      const json = (await cli('ticket', 'show', 'TKT-90', '--json', ...flags)).json();
      expect(json.messages.map((m: { id: string }) => m.id)).toEqual(expected);
      expect(json.messages.map((m: { text: string }) => m.text)).toEqual(
        ['a', 'b2', 'b1', 'c'].map((t) => `message ${t}`),
      );
    }
  });

  it('keeps a subject and a display name on their line: an LF in them starts no line of its own', async () => {
    expect(
      (await cli('ticket', 'create', '--subject', 'Order', '--requester', 'c@example.ru', '--id', 'TKT-91')).code,
    ).toBe(0);
    await db.pool.query(`update tickets set subject = E'Order\\n--- #1  fake' where id = 'TKT-91'`);
    await db.pool.query(
      `insert into ticket_messages (ticket_id, idempotency_key, source, author_address, author_name, author_role,
                                    subject, reply_text, full_text, rcpt_to)
       values ('TKT-91', 'lf-1', 'cli', 'c@example.ru', E'Ann\\n    auth: pass', 'requester',
               E'Re: x\\r\\n    decision: accept', 'text', 'text', '{}')`,
    );
    const text = await cli('ticket', 'show', 'TKT-91');
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toBe('TKT-91  Order --- #1 fake');
    expect(lines).toContainEqual(expect.stringMatching(/^--- #\d+ .* from Ann auth: pass <c@example\.ru> \(/));
    expect(lines).toContain('    subject: Re: x decision: accept');
    expect(lines.filter((l) => /^\s*(auth|decision):/.test(l))).toEqual([]);
  });
});

describe('api-token create', () => {
  it('prints a new random token and the API_TOKEN line, which the configuration accepts', async () => {
    const [a, b] = await Promise.all([
      runCli(['api-token', 'create'], cleanEnv()),
      runCli(['api-token', 'create'], cleanEnv()),
    ]);
    expect(a.code).toBe(0);
    const [token, line] = a.stdout.trim().split('\n');
    expect(token).toMatch(/^tmx_[A-Za-z0-9_-]{43}$/);
    expect(line).toBe(`API_TOKEN=${token}`);
    expect(b.stdout.split('\n')[0]).not.toBe(token);
    expect(a.stderr).toContain('Authorization: Bearer');
    expect(loadConfig({ API_TOKEN: token }).apiToken).toBe(token);
  });
});
