// The RCPT-time ticket lookups (src/db/ticket-lookups.ts) when PostgreSQL is in trouble, against a
// real PostgreSQL and a pool set up as the service sets it (src/service.ts: waiting for a connection
// ends at half of HOOK_TIMEOUT_MS, so that the reply names the trouble, DB_UNAVAILABLE, rather
// than the deadline). A lookup queued behind a statement still waiting for a connection must not
// wait for that statement and then for its own: each RCPT answers with the precise tag, as each
// did when every lookup was its own statement (findTicket).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TicketLookups } from '../../src/db/ticket-lookups.js';
import { failureTag, withDeadline } from '../../src/deadline.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await insertTestTicket(db.pool, 'TKT-8101', 'client@example.ru');
});

afterAll(async () => {
  await db?.drop();
});

describe('ticket lookups with the pool exhausted by other work', () => {
  it('answer every lookup of a flood with DB_UNAVAILABLE within the deadline, then find tickets again', async () => {
    const hookTimeoutMs = 1_200;
    // as src/service.ts: connectTimeoutMs = min(5000, hook / 2)
    const pool = new pg.Pool({ connectionString: db.url, max: 1, connectionTimeoutMillis: hookTimeoutMs / 2 });
    try {
      const lookups = new TicketLookups(pool);
      const other = await pool.connect(); // the one connection, held by other work
      const started = performance.now();
      // more RCPTs at once than one statement takes (256), as rcpt-to.ts asks them
      const answers = await Promise.all(
        Array.from({ length: 300 }, () =>
          withDeadline(lookups.find('TKT-8101'), hookTimeoutMs, 'ticket lookup').then(
            () => 'found',
            (err: unknown) => failureTag(err),
          ),
        ),
      );
      const took = performance.now() - started;
      other.release();
      const tags = answers.reduce<Record<string, number>>((n, t) => ({ ...n, [t]: (n[t] ?? 0) + 1 }), {});
      expect(tags).toEqual({ DB_UNAVAILABLE: 300 });
      expect(took).toBeLessThan(hookTimeoutMs);
      // the connection back: the next lookup finds its ticket
      expect((await withDeadline(lookups.find('TKT-8101'), hookTimeoutMs, 'ticket lookup'))?.id).toBe('TKT-8101');
    } finally {
      await pool.end();
    }
  });
});
