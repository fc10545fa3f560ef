// Numbered SQL migrations from migrations/, applied in one transaction under an advisory lock so
// that instances starting together take turns, inside our own schema. Files are only ever added,
// never edited.
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR } from '../paths.js';
import { DEFAULT_SCHEMA, inSchema, schemaOf } from './schema.js';

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

export interface MigrateOptions {
  /** Our schema; default: the one the URL's search_path names (inSchema), else ticketmx. */
  schema?: string;
  dir?: string;
}

/**
 * Applies what is missing, every migration with search_path set to our schema (created here
 * unless it exists), so that unqualified names in migrations are ours. The history lives in
 * <schema>.schema_migrations; an installation from before 0002 has it in public, and it moves
 * into the schema in the same transaction as the migrations that move the rest. Returns the
 * names applied now.
 */
export async function migrate(connectionString: string, options: MigrateOptions = {}): Promise<string[]> {
  const migrations = await readMigrations(options.dir);
  const schema = options.schema ?? schemaOf(connectionString) ?? DEFAULT_SCHEMA;
  const client = new pg.Client({
    connectionString: inSchema(connectionString, schema),
    application_name: 'ticket-mx migrate',
  });
  await client.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await ensureSchema(client, schema);
    if (!(await hasTable(client, schema, 'schema_migrations'))) {
      if (await hasLegacyHistory(client))
        await client.query(`alter table public.schema_migrations set schema ${client.escapeIdentifier(schema)}`);
      else
        await client.query(`create table schema_migrations (
          id integer primary key, name text not null, applied_at timestamptz not null default now())`);
    }
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

/**
 * Creates the schema unless it exists (a DBA may have made it: creating needs CREATE on the
 * database), and checks that this connection's search_path really starts there: a pooler that
 * drops the `options` startup parameter would otherwise send our unqualified SQL to public.
 */
async function ensureSchema(client: pg.Client, schema: string): Promise<void> {
  const { rowCount } = await client.query('select 1 from pg_namespace where nspname = $1', [schema]);
  if (!rowCount) await client.query(`create schema ${client.escapeIdentifier(schema)}`);
  const { rows } = await client.query<{ current: string | null; path: string }>(
    "select current_schema() as current, current_setting('search_path') as path",
  );
  if (rows[0]?.current !== schema)
    throw new Error(
      `the connection's search_path is ${JSON.stringify(rows[0]?.path)}, not our schema ${schema}: ` +
        'does a connection pooler drop the options parameter? Set it on the role instead ' +
        `(alter role … set search_path = ${schema})`,
    );
}

async function hasTable(client: pg.Client, schema: string, table: string): Promise<boolean> {
  const { rows } = await client.query<{ found: boolean }>(
    'select to_regclass(format($1, $2::text, $3::text)) is not null as found',
    ['%I.%I', schema, table],
  );
  return rows[0]!.found;
}

/**
 * Migration history from before our schema: public.schema_migrations as this runner made it,
 * with 0001 in it. Not any schema_migrations (Rails and golang-migrate have tables of that name).
 */
async function hasLegacyHistory(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ columns: string[] | null }>(
    `select array_agg(attname::text || ' ' || format_type(atttypid, atttypmod) order by attnum) as columns
       from pg_attribute
      where attrelid = to_regclass('public.schema_migrations') and attnum > 0 and not attisdropped`,
  );
  const columns = rows[0]?.columns ?? [];
  if (!columns.includes('id integer') || !columns.includes('name text')) return false;
  const first = await client.query<{ name: string }>('select name from public.schema_migrations where id = 1');
  return first.rows[0]?.name === '0001_init.sql';
}

export interface MigrationStatus {
  /** Migrations of this version the database lacks. */
  missing: string[];
  /** What the database has that this version does not know (or knows under another name). */
  unknown: string[];
}

/** What `migrate` would do, found without changing anything (commands that only read use this). */
export async function migrationStatus(
  connectionString: string,
  options: MigrateOptions = {},
): Promise<MigrationStatus> {
  const migrations = await readMigrations(options.dir);
  const schema = options.schema ?? schemaOf(connectionString) ?? DEFAULT_SCHEMA;
  const client = new pg.Client({ connectionString: inSchema(connectionString, schema), application_name: 'ticket-mx' });
  await client.connect();
  try {
    const history = (await hasTable(client, schema, 'schema_migrations'))
      ? `${client.escapeIdentifier(schema)}.schema_migrations`
      : (await hasLegacyHistory(client))
        ? 'public.schema_migrations'
        : null;
    const { rows } = history
      ? await client.query<{ id: number; name: string }>(`select id, name from ${history} order by id`)
      : { rows: [] as { id: number; name: string }[] };
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
