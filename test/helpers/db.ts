// A database of the test file's own, cloned from the migrated template (graphile-worker style).
// Its URL sets search_path to our schema, as the service's connections do.
import crypto from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { TicketMessageRow } from '../../src/db/queries.js';
import { DEFAULT_SCHEMA, inSchema } from '../../src/db/schema.js';
import { withDatabase } from './global-setup.js';

export interface TestDatabase {
  /** With search_path set to ticketmx. */
  url: string;
  /** The same database as the CRM would connect to it: no search_path of ours. */
  plainUrl: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const name = `ticketmx_test_${crypto.randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // The template must have no other sessions while it is copied; retry if one is closing.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`create database ${name} template ${inject('templateDb')}`);
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== '55006' || attempt > 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await admin.end();
  }
  const plainUrl = withDatabase(adminUrl, name);
  const url = inSchema(plainUrl, DEFAULT_SCHEMA);
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  return {
    url,
    plainUrl,
    pool,
    async drop() {
      // pool.end() resolves before its clients have said goodbye; a drop (force) in between makes
      // the server end them with an error that nobody listens to any more
      let open = pool.totalCount;
      const ended = new Promise<void>((resolve) => {
        if (!open) resolve();
        pool.on('remove', () => {
          if (--open <= 0) resolve();
        });
      });
      await pool.end();
      await ended;
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      await admin.query(`drop database if exists ${name} with (force)`).finally(() => admin.end());
    },
  };
}

export async function insertTestTicket(
  pool: pg.Pool,
  id: string,
  requester = 'client@example.ru',
  subject = `Test ticket ${id}`,
) {
  await pool.query('insert into tickets (id, subject, requester) values ($1, $2, $3)', [id, subject, requester]);
}

export async function counts(pool: pg.Pool) {
  const { rows } = await pool.query<{ raw: number; tm: number; um: number }>(
    'select (select count(*)::int from raw_messages) as raw, (select count(*)::int from ticket_messages) as tm, (select count(*)::int from unrouted_messages) as um',
  );
  return rows[0]!;
}

/** An empty database (nothing migrated), for tests of migrations; its URL has no search_path of ours. */
export async function createEmptyDatabase(): Promise<{ plainUrl: string; drop(): Promise<void> }> {
  const adminUrl = inject('adminUrl');
  const name = `ticketmx_test_empty_${crypto.randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`).finally(() => admin.end());
  return {
    plainUrl: withDatabase(adminUrl, name),
    async drop() {
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      await admin.query(`drop database if exists ${name} with (force)`).finally(() => admin.end());
    },
  };
}

/** A ticket message as the pipeline would hand it to the store (`key` makes it unique), for tests below SMTP. */
export function testMessageRow(ticketId: string, key: string, extra: Partial<TicketMessageRow> = {}): TicketMessageRow {
  return {
    ticketId,
    idempotencyKey: `mid:<${key}>`,
    authorAddress: 'client@example.ru',
    authorName: 'Client',
    authorRole: 'requester',
    subject: 'Re: printer',
    replyText: key,
    fullText: key,
    removedText: '',
    html: null,
    messageId: `<${key}>`,
    inReplyTo: null,
    references: [],
    sentAt: new Date('2026-01-02T03:04:05Z'),
    envelope: {
      clientIp: '192.0.2.1',
      clientHostname: null,
      helo: 'mail.example.ru',
      mailFrom: 'client@example.ru',
      rcptTo: [`support+${ticketId}@flamecrm.ru`],
      tls: false,
      tlsCipher: null,
    },
    authResults: null,
    authHeader: null,
    authVerdict: 'AUTH_ACCEPTED',
    authReason: 'requester',
    ...extra,
  };
}
