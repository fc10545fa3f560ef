// Migrations: applied once under the advisory lock even when instances start together, inside
// our own schema, with nothing left in public.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrate, readMigrations } from '../../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { withDatabase } from '../helpers/global-setup.js';

describe('migrate', () => {
  let empty: string;
  const name = `ticketmx_test_empty_${process.pid}`;
  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: inject('adminUrl') });
    await admin.connect();
    await admin.query(`drop database if exists ${name}`);
    await admin.query(`create database ${name}`);
    await admin.end();
    empty = withDatabase(inject('adminUrl'), name);
  });
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: inject('adminUrl') });
    await admin.connect();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  });

  it('applies every migration exactly once when four instances start together', async () => {
    const results = await Promise.all([1, 2, 3, 4].map(() => migrate(empty)));
    const all = await readMigrations();
    expect(results.flat().sort()).toEqual(all.map((m) => m.name).sort());
    expect(results.filter((r) => r.length > 0)).toHaveLength(1);
    const client = new pg.Client({ connectionString: empty });
    await client.connect();
    try {
      const { rows } = await client.query('select name from ticketmx.schema_migrations order by id');
      expect(rows.map((r) => r.name)).toEqual(all.map((m) => m.name));
      const inPublic = await client.query(
        `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'
         union all
         select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'`,
      );
      expect(inPublic.rows).toEqual([]);
    } finally {
      await client.end();
    }
    expect(await migrate(empty)).toEqual([]);
  });

  it('refuses a database that has migrations this version does not know', async () => {
    const db: TestDatabase = await createTestDatabase();
    try {
      await db.pool.query("insert into schema_migrations (id, name) values (9999, '9999_future.sql')");
      await expect(migrate(db.url)).rejects.toThrow(/run a newer ticket-mx/);
    } finally {
      await db.drop();
    }
  });

  it('moves an existing installation into the schema before anything else runs', async () => {
    // a later migration creates its objects in our schema and may refer to 0001's tables by their
    // unqualified names, which only works once they have moved
    const all = await readMigrations();
    expect(all[0]?.name).toBe('0001_init.sql');
    expect(all[1]?.name).toMatch(/^\d{4}_own_schema\.sql$/);
  });

  it('numbers migrations without gaps', async () => {
    const all = await readMigrations();
    expect(all.map((m) => m.id)).toEqual(all.map((_, i) => i + 1));
  });
});
