// The database every command and `serve` open the same way: DATABASE_URL when set, otherwise the
// embedded PostgreSQL under DATA_DIR. Its own module, apart from src/service.ts, so that a command
// that only reads or writes rows does not load the SMTP and HTTP servers (a second of start-up).
import { type Config, ConfigError } from '../config.js';
import type { Logger } from '../log.js';
import { type EmbeddedPostgres, embeddedPostgresInstalled, openEmbeddedPostgres } from './embedded.js';
import { inSchema } from './schema.js';

export interface Database {
  url: string;
  embedded: EmbeddedPostgres | null;
}

export interface OpenOptions {
  /** `serve`: supervise the embedded PostgreSQL (restart it, adopt an orphan, stop it with us). */
  supervise?: boolean;
  /** False: never create an embedded cluster; commands that only read pass false. */
  create?: boolean;
}

/**
 * DATABASE_URL when set; otherwise the embedded PostgreSQL under DATA_DIR (started or attached to).
 * The URL sets search_path to DATABASE_SCHEMA: every connection opened with it works in our schema.
 */
export async function openDatabase(
  config: Readonly<Config>,
  log: Logger,
  options: OpenOptions = {},
): Promise<Database> {
  if (config.databaseUrl) return { url: inSchema(config.databaseUrl, config.databaseSchema), embedded: null };
  if (!(await embeddedPostgresInstalled()))
    throw new ConfigError([
      'DATABASE_URL: must be set: this installation has no embedded PostgreSQL ' +
        '(the container image leaves it out; the local profile is for a checkout with `npm ci`)',
    ]);
  const embedded = await openEmbeddedPostgres(config.dataDir, { log, ...options });
  return { url: inSchema(embedded.url, config.databaseSchema), embedded };
}
