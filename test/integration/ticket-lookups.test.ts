// The RCPT-time ticket lookups (src/db/ticket-lookups.ts) against a real PostgreSQL: lookups asked
// while a statement is under way share the next one, and each gets its own answer — its ticket,
// null for an id that has none, the status of a closed one; a failed statement fails the lookups in
// it and the next ones still run; and nothing is cached (a ticket closed or inserted between two
// lookups is seen at once).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TicketLookups } from '../../src/db/ticket-lookups.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  for (const id of ['TKT-8001', 'TKT-8002', 'TKT-8003']) await insertTestTicket(db.pool, id, 'client@example.ru');
  await db.pool.query("update tickets set status = 'closed' where id = 'TKT-8003'");
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('ticket lookups', () => {
  it('answers the lookups asked together from one statement after the first, each with its own ticket', async () => {
    const statements: number[] = [];
    const lookups = new TicketLookups(pool, (n) => statements.push(n));
    const ids = ['TKT-8001', 'TKT-8002', 'TKT-9999', 'TKT-8001', 'TKT-8003', 'TKT-8002'];
    const found = await Promise.all(ids.map((id) => lookups.find(id)));
    // the first found nothing under way and ran alone; the other five waited for it and went together
    expect(statements).toEqual([1, 5]);
    expect(found.map((t) => t && { id: t.id, status: t.status })).toEqual([
      { id: 'TKT-8001', status: 'open' },
      { id: 'TKT-8002', status: 'open' },
      null,
      { id: 'TKT-8001', status: 'open' },
      { id: 'TKT-8003', status: 'closed' },
      { id: 'TKT-8002', status: 'open' },
    ]);
    expect(found[0]).toMatchObject({ requester: 'client@example.ru', subject: expect.any(String) });
  });

  it('caches nothing: a ticket inserted or closed after a lookup is seen by the next', async () => {
    const lookups = new TicketLookups(pool);
    expect(await lookups.find('TKT-8004')).toBeNull();
    await insertTestTicket(db.pool, 'TKT-8004', 'client@example.ru');
    expect((await lookups.find('TKT-8004'))?.status).toBe('open');
    await db.pool.query("update tickets set status = 'closed' where id = 'TKT-8004'");
    expect((await lookups.find('TKT-8004'))?.status).toBe('closed');
  });

  it('fails the lookups of a failed statement with its error, and runs the next statement', async () => {
    let calls = 0;
    const flaky: Pick<pg.Pool, 'query'> = {
      query: ((...args: Parameters<pg.Pool['query']>) => {
        calls++;
        if (calls === 1) return Promise.reject(Object.assign(new Error('connection terminated'), { code: '57P01' }));
        return (pool.query as (...a: unknown[]) => unknown)(...args);
      }) as pg.Pool['query'],
    };
    const lookups = new TicketLookups(flaky);
    const first = lookups.find('TKT-8001');
    const second = lookups.find('TKT-8002'); // waits for the first statement, which fails
    await expect(first).rejects.toMatchObject({ code: '57P01' });
    expect((await second)?.id).toBe('TKT-8002');
    expect(calls).toBe(2);
  });

  it('puts at most 256 lookups in one statement', async () => {
    const statements: number[] = [];
    const lookups = new TicketLookups(pool, (n) => statements.push(n));
    const found = await Promise.all(
      Array.from({ length: 600 }, (_, i) => lookups.find(i % 2 ? 'TKT-8001' : `TKT-7${i}`)),
    );
    expect(statements).toEqual([1, 256, 256, 87]);
    expect(found.filter((t) => t?.id === 'TKT-8001')).toHaveLength(300);
    expect(found.filter((t) => t === null)).toHaveLength(300);
  });
});
