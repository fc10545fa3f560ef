// What every command shares: the Command shape the registry in src/cli.ts lists, usage errors,
// option parsing, and opening the same database as a running `serve`.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type Config, loadConfig, type VariableName } from '../config.js';
import { migrationStatus } from '../db/migrate.js';
import { openDatabase } from '../db/open.js';
import { createPool, type Pool } from '../db/pool.js';
import { createLogger, type Logger } from '../log.js';
import { parseTicketId } from '../mail/ticket-id.js';

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
export class UsageError extends Error {
  /** The command whose `--help` the hint names; the dispatcher sets it. */
  command?: string;
}

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

/**
 * Opens the database the way serve does and hands a pool to fn. Only `serve` and `migrate` change
 * the schema: a database that lacks migrations (or has newer ones) is refused with what to run,
 * and an embedded database that does not exist yet is not created (a command run from the wrong
 * directory must not make a second, empty one).
 */
export async function withDatabase<T>(
  fn: (pool: Pool, config: Config) => Promise<T>,
  options: { unused?: VariableName[] } = {},
): Promise<T> {
  const config = loadConfig(process.env, options);
  const db = await openDatabase(config, commandLogger(config), { create: false });
  try {
    const status = await migrationStatus(db.url);
    if (status.unknown.length)
      throw new Error(
        `the database has migrations this version does not know (${status.unknown.join(', ')}): run a newer ticket-mx`,
      );
    if (status.missing.length)
      throw new Error(
        `the database lacks migrations (${status.missing.join(', ')}): run \`ticket-mx migrate\` ` +
          '(serve applies them when it starts)',
      );
    const pool = createPool({ connectionString: db.url, max: 2 });
    try {
      return await fn(pool, config);
    } finally {
      await pool.end();
    }
  } finally {
    await db.embedded?.stop();
  }
}

const CONTROL_CHARACTERS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** What senders and remote servers wrote, fit for a terminal: no escape sequences or other control characters. */
export const printable = (text: string): string => text.replace(CONTROL_CHARACTERS, '');

export function normaliseTicketId(value: string): string {
  const id = parseTicketId(value.trim());
  if (!id) throw new UsageError(`'${value}' is not a ticket id (TKT-<number>)`);
  return id;
}
