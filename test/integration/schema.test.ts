// Our own schema: an installation from before it (0001's objects and history in public, with
// data) moves there with nothing lost and keeps working; a CRM's tables in public are never
// touched; a non-default DATABASE_SCHEMA holds everything, for the service and the CLI alike.
import crypto from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, readMigrations } from '../../src/db/migrate.js';
import { insertTicket, storeMessage, type TicketMessageRow } from '../../src/db/queries.js';
import { inSchema } from '../../src/db/schema.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { createEmptyDatabase, testMessageRow } from '../helpers/db.js';
import { startTestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

const TABLES = [
  'tickets',
  'raw_messages',
  'ticket_messages',
  'unrouted_messages',
  'notification_messages',
  'attachments',
];

/** Every row of every 0001 table, as JSON, read through whatever search_path the pool has. */
async function snapshot(db: pg.Pool | pg.Client): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const table of TABLES) {
    const { rows } = await db.query<{ row: unknown }>(`select to_jsonb(t) as row from ${table} t order by 1::text`);
    out[table] = rows.map((r) => r.row).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  }
  return out;
}

/** What a schema holds: relations (tables, views, sequences, indexes) and functions, by name. */
async function objectsIn(db: pg.Pool | pg.Client, schema: string): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `select c.relname::text as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1
     union all
     select p.proname::text || '()' from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = $1
     order by 1`,
    [schema],
  );
  return rows.map((r) => r.name);
}

/** A row with text, HTML and auth results in it: the legacy data the snapshot compares. */
function messageRow(ticketId: string, key: string, text: string): TicketMessageRow {
  return testMessageRow(ticketId, key, {
    idempotencyKey: key,
    replyText: text,
    fullText: `${text}\n\n> quoted`,
    removedText: '> quoted',
    html: `<p>${text}</p>`,
    messageId: `<${key}@example.ru>`,
    authResults: { spf: { result: 'pass' } },
    authVerdict: 'accepted',
  });
}

/**
 * A database as the runner before 0002 left it: 0001 and its history in public, with tickets, two
 * messages (one with an attachment), unrouted mail and a notification; and a CRM table beside it.
 */
async function legacyInstallation(plainUrl: string): Promise<void> {
  const initial = (await readMigrations()).find((m) => m.name === '0001_init.sql')!;
  const client = new pg.Pool({ connectionString: plainUrl, max: 1 });
  try {
    await client.query(`create table schema_migrations (
      id integer primary key, name text not null, applied_at timestamptz not null default now())`);
    await client.query(initial.sql);
    await client.query("insert into schema_migrations (id, name) values (1, '0001_init.sql')");
    await client.query('create table crm_notes (id serial primary key, body text)');
    await client.query("insert into crm_notes (body) values ('mine')");
    // the code of that version: unqualified SQL on a connection whose search_path is public
    const one = await insertTicket(client, { subject: 'Printer on fire', requester: 'client@example.ru' });
    await insertTicket(client, { subject: 'VPN', requester: 'boss@example.ru' });
    const bytes = Buffer.from('From: client@example.ru\r\n\r\nIt works again.\r\n');
    await storeMessage(client, {
      bytes,
      sha256: crypto.createHash('sha256').update(bytes).digest(),
      ticketMessages: [messageRow(one.id, 'mid:legacy-1', 'It works again.')],
      unrouted: [],
      attachments: [
        {
          filename: 'photo.jpg',
          contentType: 'image/jpeg',
          content: Buffer.from('jpeg bytes'),
          size: 10,
          sha256: crypto.createHash('sha256').update('jpeg bytes').digest(),
          contentId: null,
          inline: false,
        },
      ],
      maxPerHour: 0,
    });
    const auto = Buffer.from('From: daemon@example.ru\r\n\r\nOut of office\r\n');
    await storeMessage(client, {
      bytes: auto,
      sha256: crypto.createHash('sha256').update(auto).digest(),
      ticketMessages: [],
      unrouted: [
        {
          recipient: 'support+tkt-1@flamecrm.ru',
          ticketId: one.id,
          reason: 'auto-reply: Auto-Submitted',
          idempotencyKey: 'mid:auto-1',
          fromAddress: 'daemon@example.ru',
          subject: 'Out of office',
          messageId: '<auto-1@example.ru>',
          envelope: messageRow(one.id, 'x', '').envelope,
        },
      ],
      attachments: [],
      maxPerHour: 0,
    });
    await client.query(
      "insert into notification_messages (message_id, ticket_id) values ('<notify-TKT-1-abc@flamecrm.ru>', $1)",
      [one.id],
    );
  } finally {
    await client.end();
  }
}

describe('moving an installation from before our schema', () => {
  let db: Awaited<ReturnType<typeof createEmptyDatabase>>;
  let before: Record<string, unknown[]>;
  let applied: string[];
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await createEmptyDatabase();
    await legacyInstallation(db.plainUrl);
    const plain = new pg.Client({ connectionString: db.plainUrl });
    await plain.connect();
    before = await snapshot(plain).finally(() => plain.end());
    applied = await migrate(inSchema(db.plainUrl, 'ticketmx'));
    pool = new pg.Pool({ connectionString: inSchema(db.plainUrl, 'ticketmx'), max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('applies every migration after 0001 and keeps the history, now in the schema', async () => {
    const all = await readMigrations();
    expect(applied).toEqual(all.slice(1).map((m) => m.name));
    const { rows } = await pool.query('select name from ticketmx.schema_migrations order by id');
    expect(rows.map((r) => r.name)).toEqual(all.map((m) => m.name));
    expect(await migrate(inSchema(db.plainUrl, 'ticketmx'))).toEqual([]);
  });

  it('loses nothing: every row of every table is in the schema, unchanged', async () => {
    expect(before.ticket_messages).toHaveLength(1);
    expect(before.attachments).toHaveLength(1);
    expect(before.unrouted_messages).toHaveLength(1);
    // later migrations may add columns (0003: ticket_messages.forwarded): compare what was there
    const after = await snapshot(pool);
    const asBefore = Object.fromEntries(
      Object.entries(after).map(([table, rows]) => [
        table,
        rows.map((row, i) => {
          const keys = Object.keys((before[table]?.[i] ?? {}) as object);
          return Object.fromEntries(Object.entries(row as object).filter(([k]) => keys.includes(k)));
        }),
      ]),
    );
    expect(asBefore).toEqual(before);
  });

  it('leaves nothing of ours in public, and the CRM table there untouched', async () => {
    expect(await objectsIn(pool, 'public')).toEqual(['crm_notes', 'crm_notes_id_seq', 'crm_notes_pkey']);
    expect((await pool.query('select body from public.crm_notes')).rows).toEqual([{ body: 'mine' }]);
    const ours = await objectsIn(pool, 'ticketmx');
    for (const name of [...TABLES, 'schema_migrations', 'ticket_number_seq', 'raw_messages_id_seq', 'store_message()'])
      expect(ours).toContain(name);
  });

  it('numbers continue where they were: tickets and row ids', async () => {
    expect((await insertTicket(pool, { subject: 'New', requester: 'a@example.ru' })).id).toBe('TKT-3');
    const raw = await pool.query<{ id: string }>(
      "insert into raw_messages (sha256, size, bytes) values ('\\x00', 1, '\\x00') returning id",
    );
    const highest = Math.max(...before.raw_messages!.map((r) => Number((r as { id: number }).id)));
    expect(Number(raw.rows[0]!.id)).toBeGreaterThan(highest);
  });

  it('works: a reply lands on the old ticket through SMTP and ticket show lists both messages', async () => {
    const server = await startTestServer(inSchema(db.plainUrl, 'ticketmx'));
    try {
      const r = await deliver(server.port, {
        from: 'client@example.ru',
        to: ['support+TKT-1@flamecrm.ru'],
        message: buildMessage({ from: 'client@example.ru', to: 'support+TKT-1@flamecrm.ru', body: 'Still fine.' }),
      });
      expect(r.short).toBe('250 2.0.0');
    } finally {
      await server.close();
    }
    const shown = await runCli(
      ['ticket', 'show', 'TKT-1', '--json'],
      cleanEnv({ DATABASE_URL: db.plainUrl, MAIL_DOMAINS: 'flamecrm.ru' }),
    );
    expect(shown.code, shown.stderr).toBe(0);
    const { messages } = JSON.parse(shown.stdout) as { messages: { text: string; attachments: unknown[] }[] };
    expect(messages.map((m) => m.text)).toEqual(['It works again.', 'Still fine.']);
    expect(messages[0]!.attachments).toEqual([expect.objectContaining({ filename: 'photo.jpg', size: 10 })]);
  });
});

describe('a database the CRM already uses', () => {
  it("gets all of ticket-mx in the schema; the CRM's tickets and schema_migrations in public stay", async () => {
    const db = await createEmptyDatabase();
    const crm = new pg.Client({ connectionString: db.plainUrl });
    await crm.connect();
    try {
      await crm.query(`create table schema_migrations (version varchar primary key);
        insert into schema_migrations values ('20240101000000');
        create table tickets (id serial primary key, title text);
        insert into tickets (title) values ('a CRM ticket')`);
      await migrate(inSchema(db.plainUrl, 'ticketmx'));
      expect(await objectsIn(crm, 'public')).toEqual([
        'schema_migrations',
        'schema_migrations_pkey',
        'tickets',
        'tickets_id_seq',
        'tickets_pkey',
      ]);
      expect((await crm.query('select title from public.tickets')).rows).toEqual([{ title: 'a CRM ticket' }]);
      expect((await crm.query('select version from public.schema_migrations')).rows).toHaveLength(1);
      const { rows } = await crm.query('select count(*)::int as n from ticketmx.schema_migrations');
      expect(rows[0].n).toBe((await readMigrations()).length);
    } finally {
      await crm.end();
      await db.drop();
    }
  });
});

describe('DATABASE_SCHEMA=helpdesk_mail', () => {
  let db: Awaited<ReturnType<typeof createEmptyDatabase>>;
  beforeAll(async () => {
    db = await createEmptyDatabase();
  });
  afterAll(async () => db?.drop());

  it('holds everything: the CLI and the service create and use it, nothing lands in ticketmx or public', async () => {
    const env = cleanEnv({ DATABASE_URL: db.plainUrl, DATABASE_SCHEMA: 'helpdesk_mail', MAIL_DOMAINS: 'flamecrm.ru' });
    // only migrate (and serve) change the schema; the other commands use it
    const migrated = await runCli(['migrate'], env);
    expect(migrated.code, migrated.stderr).toBe(0);
    const created = await runCli(['ticket', 'create', '--subject', 'Elsewhere', '--requester', 'c@example.ru'], env);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('TKT-1');

    const server = await startTestServer(db.plainUrl, { DATABASE_SCHEMA: 'helpdesk_mail' });
    try {
      const r = await deliver(server.port, {
        from: 'c@example.ru',
        to: ['support+TKT-1@flamecrm.ru'],
        message: buildMessage({ from: 'c@example.ru', to: 'support+TKT-1@flamecrm.ru', body: 'Other schema.' }),
      });
      expect(r.short).toBe('250 2.0.0');
      const missing = await deliver(server.port, {
        from: 'c@example.ru',
        to: ['support+TKT-2@flamecrm.ru'],
        message: buildMessage(),
      });
      expect(missing.short).toBe('550 5.1.1');
    } finally {
      await server.close();
    }

    const shown = await runCli(['ticket', 'show', 'TKT-1', '--json'], env);
    expect(JSON.parse(shown.stdout).messages.map((m: { text: string }) => m.text)).toEqual(['Other schema.']);
    const client = new pg.Client({ connectionString: db.plainUrl });
    await client.connect();
    try {
      const { rows } = await client.query('select reply_text from helpdesk_mail.ticket_messages');
      expect(rows).toEqual([{ reply_text: 'Other schema.' }]);
      expect(await objectsIn(client, 'public')).toEqual([]);
      expect(await objectsIn(client, 'ticketmx')).toEqual([]);
      expect(await objectsIn(client, 'helpdesk_mail')).toContain('ticket_messages_v1');
    } finally {
      await client.end();
    }
  });
});
