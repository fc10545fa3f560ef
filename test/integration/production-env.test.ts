// `npm test` in a shell with production's variables exported never touches production: the tests
// use TEST_DATABASE_URL only, and no test sees DATABASE_URL. Checked by running test files in a
// nested vitest with DATABASE_URL pointing at a "production" database of its own role, then
// looking at what that role owns and what the database holds.
import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/paths.js';
import { withDatabase } from '../helpers/global-setup.js';

const NESTED = process.env.TICKETMX_NESTED_TEST_RUN === '1';

describe('production variables in the shell', () => {
  it('are not in the environment of a test', () => {
    // meaningful in the nested run below, which starts with DATABASE_URL exported
    expect(process.env.DATABASE_URL).toBeUndefined();
    expect(process.env.DATABASE_SCHEMA).toBeUndefined();
  });

  it.skipIf(NESTED)(
    'leave production untouched while test files run: its database and everything its role owns',
    { timeout: 240_000 },
    async () => {
      const adminUrl = inject('adminUrl');
      const role = `ticketmx_prod_${process.pid}`;
      const database = `ticketmx_prod_${process.pid}`;
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        await admin.query(`create role ${role} login password 'prod-secret' createdb`);
        await admin.query(`create database ${database} owner ${role}`);
        const url = new URL(withDatabase(adminUrl, database));
        url.username = role;
        url.password = 'prod-secret';
        const productionUrl = url.toString();
        const production = new pg.Client({ connectionString: productionUrl });
        await production.connect();
        try {
          await production.query('create table customers (id serial primary key, name text)');
          await production.query("insert into customers (name) values ('Ivan')");

          const run = await nestedRun(
            [
              'test/integration/production-env.test.ts',
              'test/integration/migrate.test.ts',
              'test/integration/schema.test.ts',
            ],
            {
              DATABASE_URL: productionUrl,
              DATABASE_SCHEMA: 'ticketmx',
              MAIL_DOMAINS: 'flamecrm.ru',
              TEST_DATABASE_URL: adminUrl,
            },
          );
          expect(run.code, run.output.slice(-3000)).toBe(0);
          expect(run.output).toMatch(/tests: \d+ passed, 0 failed/);

          const owned = await admin.query(
            'select datname::text from pg_database d join pg_roles r on r.oid = d.datdba where r.rolname = $1',
            [role],
          );
          expect(owned.rows).toEqual([{ datname: database }]);
          const schemas = await production.query(
            "select nspname::text from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema'",
          );
          expect(schemas.rows).toEqual([{ nspname: 'public' }]);
          const relations = await production.query(
            "select relname::text from pg_class where relnamespace = 'public'::regnamespace order by 1",
          );
          expect(relations.rows.map((r) => r.relname)).toEqual(['customers', 'customers_id_seq', 'customers_pkey']);
          expect((await production.query('select name from customers')).rows).toEqual([{ name: 'Ivan' }]);
        } finally {
          await production.end();
        }
      } finally {
        await admin.query(`drop database if exists ${database} with (force)`);
        await admin.query(`drop role if exists ${role}`);
        await admin.end();
      }
    },
  );
});

function nestedRun(files: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [path.join(PROJECT_ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...files],
      {
        cwd: PROJECT_ROOT,
        env: { ...process.env, ...env, TICKETMX_NESTED_TEST_RUN: '1', NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    child.on('close', (code) => resolve({ code, output }));
  });
}
