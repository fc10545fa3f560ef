// The CRM's read contract: ticketmx.ticket_messages_v1 keeps every column it was released with
// (columns are only appended) and the README documents each; the NOTIFY payload is what the
// README says; a role granted only the view can read it; and deploy/crm-worker.mjs, run against
// a real ticket-mx, prints each committed reply once: those from before it started and those after.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/paths.js';
import { cleanEnv } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

/** ticket_messages_v1 as released: these stay, in this order, with these types. Columns added later go after. */
const V1_AT_RELEASE: [string, string][] = [
  ['id', 'bigint'],
  ['ticket_id', 'text'],
  ['raw_message_id', 'bigint'],
  ['author_address', 'text'],
  ['author_name', 'text'],
  ['author_role', 'text'],
  ['subject', 'text'],
  ['reply_text', 'text'],
  ['full_text', 'text'],
  ['html', 'text'],
  ['message_id', 'text'],
  ['in_reply_to', 'text'],
  ['references', 'text[]'],
  ['sent_at', 'timestamp with time zone'],
  ['auth_verdict', 'text'],
  ['auth_reason', 'text'],
  ['attachments', 'jsonb'],
  ['received_at', 'timestamp with time zone'],
];

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  await insertTestTicket(db.pool, 'TKT-12345', 'client@example.ru');
  server = await startTestServer(db.url);
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const send = (body: string, message?: string) =>
  deliver(server.port, {
    from: 'client@example.ru',
    to: ['support+TKT-12345@flamecrm.ru'],
    message: message ?? buildMessage({ from: 'Client <client@example.ru>', to: 'support+TKT-12345@flamecrm.ru', body }),
  });

async function viewColumns(): Promise<[string, string][]> {
  const { rows } = await db.pool.query<{ name: string; type: string }>(
    `select a.attname::text as name, format_type(a.atttypid, a.atttypmod) as type
       from pg_attribute a where a.attrelid = 'ticketmx.ticket_messages_v1'::regclass and a.attnum > 0
      order by a.attnum`,
  );
  return rows.map((r) => [r.name, r.type]);
}

describe('ticketmx.ticket_messages_v1', () => {
  it('keeps every column it was released with, in order and type (columns are only appended)', async () => {
    expect((await viewColumns()).slice(0, V1_AT_RELEASE.length)).toEqual(V1_AT_RELEASE);
  });

  it('is documented column by column in the README', async () => {
    const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('<!-- ticket_messages_v1:begin -->');
    const end = readme.indexOf('<!-- ticket_messages_v1:end -->');
    expect(start, 'README marks the ticket_messages_v1 table').toBeGreaterThan(0);
    const documented = [...readme.slice(start, end).matchAll(/^\| `([a-z_]+)` \| `([^`]+)` \|/gm)].map((m) => [
      m[1],
      m[2],
    ]);
    expect(documented).toEqual(await viewColumns());
  });

  it('has one row per ticket message: reply text, full text, sanitized HTML, attachments, verdict', async () => {
    const boundary = 'b0undary';
    const message = [
      'From: Client <client@example.ru>',
      'To: support+TKT-12345@flamecrm.ru',
      'Subject: Re: [TKT-12345] Printer',
      'Message-ID: <v1-row@example.ru>',
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Works now.<script>alert(1)</script></p><blockquote type="cite">old notification</blockquote>',
      `--${boundary}`,
      'Content-Type: application/pdf',
      'Content-Disposition: attachment; filename="report.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('%PDF-1.4 report').toString('base64'),
      `--${boundary}--`,
      '',
    ].join('\r\n');
    expect((await send('', message)).short).toBe('250 2.0.0');
    const { rows } = await db.pool.query("select * from ticket_messages_v1 where message_id = '<v1-row@example.ru>'");
    expect(rows).toHaveLength(1);
    const row = rows[0];
    expect(row).toMatchObject({
      ticket_id: 'TKT-12345',
      author_address: 'client@example.ru',
      author_name: 'Client',
      author_role: 'requester',
      subject: 'Re: [TKT-12345] Printer',
      reply_text: 'Works now.',
      auth_verdict: expect.stringMatching(/^AUTH_/),
      references: [],
      attachments: [
        {
          id: expect.any(Number),
          filename: 'report.pdf',
          content_type: 'application/pdf',
          size: 15,
          sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
          content_id: null,
          inline: false,
        },
      ],
    });
    expect(row.full_text).toContain('old notification');
    expect(row.html).toContain('Works now.');
    expect(row.html).not.toContain('script');
    expect(row.received_at).toBeInstanceOf(Date);
  });

  it('can be all a CRM role is granted', async () => {
    const role = `crm_reader_${process.pid}`;
    await db.pool.query(`create role ${role} login password 'crm-secret'`);
    try {
      await db.pool.query(`grant usage on schema ticketmx to ${role}`);
      await db.pool.query(`grant select on ticketmx.ticket_messages_v1 to ${role}`);
      const url = new URL(db.plainUrl);
      url.username = role;
      url.password = 'crm-secret';
      const crm = new pg.Client({ connectionString: url.toString() });
      await crm.connect();
      try {
        const { rows } = await crm.query('select count(*)::int as n from ticketmx.ticket_messages_v1');
        expect(rows[0].n).toBeGreaterThan(0);
        await expect(crm.query('select * from ticketmx.raw_messages')).rejects.toThrow(/permission denied/);
      } finally {
        await crm.end();
      }
    } finally {
      await db.pool.query(`drop owned by ${role}`);
      await db.pool.query(`drop role ${role}`);
    }
  });
});

describe('NOTIFY ticket_message', () => {
  it('carries {"ticket", "id"} of each committed message, on commit', async () => {
    const listener = new pg.Client({ connectionString: db.plainUrl });
    await listener.connect();
    try {
      const payloads: string[] = [];
      listener.on('notification', (n) => {
        if (n.channel === 'ticket_message' && n.payload) payloads.push(n.payload);
      });
      await listener.query('listen ticket_message');
      expect((await send('Notified.')).short).toBe('250 2.0.0');
      await expect.poll(() => payloads.length, { timeout: 5_000 }).toBe(1);
      const payload = JSON.parse(payloads[0]!);
      expect(Object.keys(payload).sort()).toEqual(['id', 'ticket']);
      const { rows } = await db.pool.query('select id, ticket_id, reply_text from ticket_messages_v1 where id = $1', [
        payload.id,
      ]);
      expect(rows).toEqual([{ id: String(payload.id), ticket_id: 'TKT-12345', reply_text: 'Notified.' }]);
      expect(payload.ticket).toBe('TKT-12345');
    } finally {
      await listener.end();
    }
  });
});

describe('deploy/crm-worker.mjs', () => {
  let worker: ChildProcess | undefined;
  afterAll(() => {
    worker?.kill();
  });

  it('is the example the README shows', () => {
    const file = fs.readFileSync(path.join(PROJECT_ROOT, 'deploy', 'crm-worker.mjs'), 'utf8');
    const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
    const code = file.slice(file.indexOf("import pg from 'pg';"));
    expect(readme).toContain(`\`\`\`js\n${code}\`\`\``);
  });

  it('prints the replies committed before it started and each one committed while it listens, once', async () => {
    expect((await send('Before the worker.')).short).toBe('250 2.0.0');
    const { rows } = await db.pool.query<{ id: string }>('select max(id)::text as id from ticket_messages');
    worker = spawn(process.execPath, [path.join(PROJECT_ROOT, 'deploy', 'crm-worker.mjs')], {
      cwd: PROJECT_ROOT,
      // the CRM's own connection string: no search_path of ours
      env: cleanEnv({ DATABASE_URL: db.plainUrl, AFTER_ID: rows[0]!.id }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    worker.stdout!.on('data', (d: Buffer) => (stdout += d));
    worker.stderr!.on('data', (d: Buffer) => (stderr += d));
    await expect.poll(() => stderr, { timeout: 10_000 }).toContain('crm-worker: listening');
    expect((await send('While it listens.')).short).toBe('250 2.0.0');
    expect((await send('And another.')).short).toBe('250 2.0.0');
    const printed = () =>
      stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { id: string; ticket: string; from: string; text: string });
    await expect.poll(() => printed().map((m) => m.text), { timeout: 10_000 }).toContain('And another.');
    // every message once: the look-back also brings the earlier ones of this file
    const all = await db.pool.query<{ id: string }>('select id from ticket_messages order by id');
    expect(printed().map((m) => m.id)).toEqual(all.rows.map((r) => r.id));
    expect(printed().map((m) => m.text)).toEqual(expect.arrayContaining(['Before the worker.', 'While it listens.']));
    expect(printed().at(-1)).toMatchObject({ ticket: 'TKT-12345', from: 'client@example.ru', text: 'And another.' });
    expect(stderr).toBe('crm-worker: listening\n');
  });
});
