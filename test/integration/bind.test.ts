// Statements with large binary parameters written by reference (src/db/bind.ts): the Bind message
// is byte for byte the one pg itself writes for the same values (this fails when pg's Bind or its
// prepare moves: pg is pinned), and a real PostgreSQL gets the very bytes, pieces back to back.
import crypto from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pieces, PiecewiseQuery, queryPieces } from '../../src/db/bind.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** What a query writes to its connection's socket while it is prepared. */
function written(query: { prepare(connection: unknown): void }): { all: Buffer; writes: Buffer[] } {
  const writes: Buffer[] = [];
  const connection = Object.assign(
    Object.create((pg as unknown as { Connection: { prototype: object } }).Connection.prototype),
    {
      parsedStatements: {},
      submittedNamedStatements: {},
      stream: { writable: true, write: (b: Buffer) => writes.push(b) },
      _send: (b: Buffer) => writes.push(b),
    },
  );
  query.prepare(connection);
  return { all: Buffer.concat(writes), writes };
}

describe('writeBind', () => {
  const big = crypto.randomBytes(300_000);
  const other = crypto.randomBytes(200_000);
  const cases: [string, unknown[], unknown[]][] = [
    ['small values', [Buffer.from('abc'), '{"a":"ё"}', 7, null], [Buffer.from('abc'), '{"a":"ё"}', 7, null]],
    ['a large buffer', [big, 'x'.repeat(100_000), 0], [big, 'x'.repeat(100_000), 0]],
    [
      'pieces',
      [new Pieces([big, Buffer.from('tiny'), other]), '[]', 3],
      [Buffer.concat([big, Buffer.from('tiny'), other]), '[]', 3],
    ],
    ['no pieces', [new Pieces([]), '[]', true], [Buffer.alloc(0), '[]', true]],
  ];
  it.each(cases)('writes what pg writes: %s', (_, ours, theirs) => {
    const config = { name: 'q', text: 'select $1::bytea, $2::text, $3' };
    const mine = written(new PiecewiseQuery({ ...config, values: ours } as pg.QueryConfig) as never);
    const pgs = written(new pg.Query({ ...config, values: theirs } as pg.QueryConfig) as never);
    expect(mine.all.equals(pgs.all)).toBe(true);
  });

  it('sends a large buffer by reference, not a copy of it', () => {
    const { writes } = written(
      new PiecewiseQuery({
        name: 'q',
        text: 'select $1',
        values: [new Pieces([big, other])],
      } as pg.QueryConfig) as never,
    );
    expect(writes).toContain(big);
    expect(writes).toContain(other);
  });
});

describe('queryPieces', () => {
  it('gives PostgreSQL the bytes of the pieces, back to back, on a pool and on a client', async () => {
    const parts = [crypto.randomBytes(1 << 20), Buffer.from('middle'), crypto.randomBytes(70_000), Buffer.alloc(0)];
    const whole = Buffer.concat(parts);
    const sql = {
      name: 'pieces_md5',
      text: 'select md5($1::bytea) as md5, length($1::bytea) as n, $2::text as t, $3::int as i',
    };
    const expected = { md5: crypto.createHash('md5').update(whole).digest('hex'), n: whole.length, t: 'ё ok', i: 42 };
    const onPool = await queryPieces(db.pool, { ...sql, values: [new Pieces(parts), 'ё ok', 42] });
    expect(onPool.rows).toEqual([expected]);
    const client = await db.pool.connect();
    try {
      for (let i = 0; i < 2; i++) {
        const r = await queryPieces(client, { ...sql, values: [new Pieces(parts), 'ё ok', 42] });
        expect(r.rows).toEqual([expected]);
      }
      await expect(
        queryPieces(client, { name: 'pieces_bad', text: 'select $1::int', values: ['nope'] }),
      ).rejects.toThrow(/invalid input syntax/);
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      client.release();
    }
  });
});

describe('a connection that fails under queryPieces', () => {
  it('rejects the query and takes the connection out of the pool, without an unhandled error event', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    pool.on('error', () => {});
    try {
      let client: pg.PoolClient | undefined;
      pool.once('acquire', (c: pg.PoolClient) => {
        client = c;
      });
      const running = queryPieces(pool, {
        name: 'pieces_sleep',
        text: 'select pg_sleep(5), $1::bytea',
        values: [Buffer.from('x')],
      });
      await expect.poll(() => client).toBeDefined();
      // the socket fails (as on a reset): pg emits 'error' on the client while it is checked out
      const stream = (client as unknown as { connection: { stream: { destroy(err: Error): void } } }).connection.stream;
      stream.destroy(Object.assign(new Error('socket reset'), { code: 'ECONNRESET' }));
      await expect(running).rejects.toThrow('socket reset');
      expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      expect(pool.totalCount).toBe(1);
    } finally {
      await pool.end();
    }
  });
});
