// Migrations: applied once under the advisory lock even when instances start together.
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
    const { rows } = await client.query('select name from schema_migrations order by id');
    await client.end();
    expect(rows.map((r) => r.name)).toEqual(all.map((m) => m.name));
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

  it('numbers migrations without gaps', async () => {
    const all = await readMigrations();
    expect(all.map((m) => m.id)).toEqual(all.map((_, i) => i + 1));
  });
});
