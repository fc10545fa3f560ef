// `ticket-mx <command>`: the registry of commands (one module each under src/cli/) and the
// dispatcher. Every command reaches the same database as a running `npm start` (DATABASE_URL,
// or the embedded one under DATA_DIR).
import fs from 'node:fs';
import path from 'node:path';
import { apiTokenCreate } from './cli/api-token.js';
import { type Command, type Out, UsageError } from './cli/command.js';
import { migrate } from './cli/migrate.js';
import { outboxList, outboxRetry, outboxRun, outboxShow } from './cli/outbox.js';
import { replyText } from './cli/reply-text.js';
import { reprocess } from './cli/reprocess.js';
import { serve } from './cli/serve.js';
import { ticketClose, ticketCreate, ticketList, ticketReply, ticketShow } from './cli/ticket.js';
import { ConfigError } from './config.js';
import { PROJECT_ROOT } from './paths.js';

/** Every command, in the order `--help` lists them. A group (`ticket`) is the first word of several. */
const COMMANDS: Command[] = [
  serve,
  migrate,
  ticketCreate,
  ticketReply,
  ticketShow,
  ticketList,
  ticketClose,
  outboxList,
  outboxShow,
  outboxRetry,
  outboxRun,
  apiTokenCreate,
  replyText,
  reprocess,
];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 4;
  return `ticket-mx: the MX for helpdesk reply addresses (support+TKT-123@your.domain)

Usage: ticket-mx <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}

Options:
  ${'-h, --help'.padEnd(width)}help for any command (ticket-mx ticket create --help)
  ${'-v, --version'.padEnd(width)}print the version

Configuration is read from environment variables only (see README.md). Without
DATABASE_URL, an embedded PostgreSQL is used under DATA_DIR (default: data/ in
the ticket-mx directory, from any current directory), shared with a running
serve.`;
}

// A reader that goes away (`ticket show … | head`) is no error of ours: stop writing, let the
// command finish (it may have a temporary PostgreSQL to stop), and exit as if all was read.
let stdoutClosed = false;
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  stdoutClosed = true;
});
const stdio: Out = {
  out: (s) => {
    if (!stdoutClosed) process.stdout.write(`${s}\n`);
  },
  err: (s) => process.stderr.write(`${s}\n`),
};

export async function main(argv: string[], io: Out = stdio): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`ticket-mx: ${err.message}\nRun 'ticket-mx ${err.command ? `${err.command} ` : ''}--help' for usage.`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`ticket-mx: ${err.message}`);
      return 78; // EX_CONFIG
    }
    io.err(`ticket-mx: ${(err as Error).message}`);
    return 1;
  }
}

const isHelp = (arg: string | undefined) => arg === '-h' || arg === '--help';

async function run(argv: string[], io: Out): Promise<number> {
  const [first, second, ...rest] = argv;
  if (!first || isHelp(first) || first === 'help') {
    io.out(mainHelp());
    return first ? 0 : 2;
  }
  if (first === '--version' || first === '-v') {
    const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    io.out(pkg.version);
    return 0;
  }
  const grouped = COMMANDS.filter((c) => c.name.startsWith(`${first} `));
  const command = grouped.length
    ? grouped.find((c) => c.name === `${first} ${second}`)
    : COMMANDS.find((c) => c.name === first);
  const args = grouped.length ? rest : argv.slice(1);
  if (!command && grouped.length) {
    const usage = `Usage: ticket-mx ${first} <${grouped.map((c) => c.name.split(' ')[1]).join('|')}> [options]\n\n${grouped.map((c) => `  ${c.name.padEnd(18)}${c.summary}`).join('\n')}`;
    if (!second || isHelp(second)) {
      (second ? io.out : io.err)(usage);
      return second ? 0 : 2;
    }
    const unknown = new UsageError(
      `unknown ${first} command '${second}' (${grouped.map((c) => c.name.split(' ')[1]).join(', ')})`,
    );
    unknown.command = first;
    throw unknown;
  }
  if (!command) throw new UsageError(`unknown command '${first}'`);
  if (args.some(isHelp)) {
    io.out(typeof command.help === 'function' ? command.help() : command.help);
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (err) {
    // the hint names the command's own --help, which says what it takes
    if (err instanceof UsageError) err.command ??= command.name;
    throw err;
  }
}
