// `ticket-mx migrate`: apply the migrations the database lacks, and exit.
import { loadConfig } from '../config.js';
import { migrate as applyMigrations } from '../db/migrate.js';
import { openDatabase } from '../db/open.js';
import { type Command, commandLogger, parse } from './command.js';

export const migrate: Command = {
  name: 'migrate',
  summary: 'apply database migrations and exit',
  help: `Usage: ticket-mx migrate

Applies the numbered SQL migrations that the database lacks, under an advisory
lock, and exits.`,
  async run(args, io) {
    parse(args, {});
    const config = loadConfig(process.env, { unused: ['MAIL_DOMAINS'] });
    const db = await openDatabase(config, commandLogger(config));
    try {
      const applied = await applyMigrations(db.url);
      io.out(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      return 0;
    } finally {
      await db.embedded?.stop();
    }
  },
};
