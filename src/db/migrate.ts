// Numbered SQL migrations from migrations/, applied in one transaction under an advisory lock so
// that instances starting together take turns. Files are only ever added, never edited.
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR } from '../paths.js';

// Any constant will do as long as it is ours: "tmx" in ASCII.
const LOCK_KEY = 0x746d78;

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  const migrations = await Promise.all(
    files.map(async (name) => ({
      id: Number(name.slice(0, 4)),
      name,
      sql: await fs.readFile(path.join(dir, name), 'utf8'),
    })),
  );
  migrations.forEach((m, i) => {
    if (m.id !== i + 1)
      throw new Error(`migrations must be numbered 0001, 0002, … without gaps; found ${m.name} at position ${i + 1}`);
  });
  return migrations;
}

/** Applies what is missing; returns the names applied now. */
export async function migrate(connectionString: string, dir?: string): Promise<string[]> {
  const migrations = await readMigrations(dir);
  const client = new pg.Client({ connectionString, application_name: 'ticket-mx migrate' });
  await client.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await client.query(`create table if not exists schema_migrations (
      id integer primary key, name text not null, applied_at timestamptz not null default now())`);
    const { rows } = await client.query<{ id: number; name: string }>(
      'select id, name from schema_migrations order by id',
    );
    const applied = new Map(rows.map((r) => [r.id, r.name]));
    const done: string[] = [];
    for (const m of migrations) {
      const existing = applied.get(m.id);
      if (existing !== undefined) {
        if (existing !== m.name)
          throw new Error(
            `migration ${m.id} was applied as ${existing} but is now ${m.name}: migrations are never renamed`,
          );
        continue;
      }
      await client.query(m.sql);
      await client.query('insert into schema_migrations (id, name) values ($1, $2)', [m.id, m.name]);
      done.push(m.name);
    }
    const latest = migrations.at(-1)?.id ?? 0;
    const newer = rows.filter((r) => r.id > latest);
    if (newer.length)
      throw new Error(
        `the database has migrations this version does not know (${newer.map((r) => r.name).join(', ')}): run a newer ticket-mx`,
      );
    await client.query('commit');
    return done;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}

export interface MigrationStatus {
  /** Migrations of this version the database lacks. */
  missing: string[];
  /** What the database has that this version does not know (or knows under another name). */
  unknown: string[];
}

/** What `migrate` would do, found without changing anything (commands that only read use this). */
export async function migrationStatus(connectionString: string, dir?: string): Promise<MigrationStatus> {
  const migrations = await readMigrations(dir);
  const client = new pg.Client({ connectionString, application_name: 'ticket-mx' });
  await client.connect();
  try {
    const { rows: table } = await client.query<{ t: string | null }>(
      "select to_regclass('schema_migrations')::text as t",
    );
    const { rows } = table[0]?.t
      ? await client.query<{ id: number; name: string }>('select id, name from schema_migrations order by id')
      : { rows: [] };
    const applied = new Map(rows.map((r) => [r.id, r.name]));
    const known = new Map(migrations.map((m) => [m.id, m.name]));
    return {
      missing: migrations.filter((m) => !applied.has(m.id)).map((m) => m.name),
      unknown: rows.filter((r) => known.get(r.id) !== r.name).map((r) => r.name),
    };
  } finally {
    await client.end();
  }
}
