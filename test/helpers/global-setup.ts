// Starts one PostgreSQL for the whole run (embedded, or the server at DATABASE_URL) and builds a
// migrated template database; each test file clones its own database from it (test/helpers/db.ts).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { type EmbeddedPostgres, openEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';

export const TEMPLATE_DB = 'ticketmx_test_template';

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDb: string;
  }
}

let embedded: EmbeddedPostgres | null = null;
let dataDir: string | null = null;

export async function setup(project: TestProject) {
  let adminUrl = process.env.DATABASE_URL;
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
  await embedded?.stop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
