// Starts one PostgreSQL for the whole run (embedded, or the server at TEST_DATABASE_URL) and builds
// a migrated template database; each test file clones its own database from it (test/helpers/db.ts).
// Never DATABASE_URL: that is production's, and a shell with production variables exported runs
// `npm test` without touching it (test/integration/production-env.test.ts); it is removed from the
// environment of every test.
// The pipeline's worker threads run compiled code (dist/): it is rebuilt first when src/ is newer.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { type EmbeddedPostgres, openEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { PROJECT_ROOT } from '../../src/paths.js';

/** Of this run only, so that runs sharing one TEST_DATABASE_URL server do not drop each other's. */
export const TEMPLATE_DB = `ticketmx_test_template_${crypto.randomBytes(4).toString('hex')}`;

/** The production variables a test must never see, whatever the shell exported. */
export const PRODUCTION_VARIABLES = ['DATABASE_URL', 'DATABASE_SCHEMA'] as const;

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDb: string;
  }
}

let embedded: EmbeddedPostgres | null = null;
let dataDir: string | null = null;
let adminUrl: string | undefined;

/** `npm test` builds first; a single `npx vitest run file` may follow an edit of src/: build then too. */
function buildIfStale() {
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
      ),
    );
  let built = 0;
  try {
    built = newest(path.join(PROJECT_ROOT, 'dist', 'src'));
  } catch {
    // never built
  }
  if (built >= newest(path.join(PROJECT_ROOT, 'src'))) return;
  execFileSync(
    process.execPath,
    [path.join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: PROJECT_ROOT,
      stdio: 'inherit',
    },
  );
}

export async function setup(project: TestProject) {
  buildIfStale();
  // test files run in child processes forked after this, with this environment
  for (const name of PRODUCTION_VARIABLES) delete process.env[name];
  adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-test-'));
    embedded = await openEmbeddedPostgres(dataDir, { database: 'postgres' });
    adminUrl = embedded.url;
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${TEMPLATE_DB} with (force)`);
    await admin.query(`create database ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
  await migrate(withDatabase(adminUrl, TEMPLATE_DB));
  project.provide('adminUrl', adminUrl);
  project.provide('templateDb', TEMPLATE_DB);
}

export async function teardown() {
  if (adminUrl && !embedded) {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${TEMPLATE_DB} with (force)`).finally(() => admin.end());
  }
  await embedded?.stop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
