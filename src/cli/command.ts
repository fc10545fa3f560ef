// What every command shares: the Command shape the registry in src/cli.ts lists, usage errors,
// option parsing, and opening the same database as a running `serve`.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type Config, loadConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { createPool, type Pool } from '../db/pool.js';
import { createLogger, type Logger } from '../log.js';
import { openDatabase } from '../service.js';

export type Out = { out: (s: string) => void; err: (s: string) => void };

export interface Command {
  /** As typed: `serve`, `ticket create`. */
  name: string;
  /** One line for `ticket-mx --help`. */
  summary: string;
  /** The whole text of `ticket-mx <name> --help`. */
  help: string | (() => string);
  /** Called without --help; returns the exit code. */
  run(args: string[], io: Out): Promise<number>;
}

/** Exit code 2 with the message and a pointer to --help. */
export class UsageError extends Error {}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Logs of commands other than serve go to stderr, so stdout stays the command's answer. */
export function commandLogger(config: Config): Logger {
  return createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, process.stderr as never);
}

/** Opens the database the way serve does, migrates it, and hands a pool to fn. */
export async function withDatabase<T>(fn: (pool: Pool, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openDatabase(config, commandLogger(config));
  const pool = createPool({ connectionString: db.url, max: 2 });
  try {
    await migrate(db.url);
    return await fn(pool, config);
  } finally {
    await pool.end();
    await db.embedded?.stop();
  }
}

export function normaliseTicketId(value: string): string {
  const m = /^tkt-(\d{1,18})$/i.exec(value.trim());
  if (!m) throw new UsageError(`'${value}' is not a ticket id (TKT-<number>)`);
  return `TKT-${m[1]}`;
}
