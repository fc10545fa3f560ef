// `ticket-mx <command>`: serve, migrate, ticket create, ticket show. Every command reaches the
// same database as a running `npm start` (DATABASE_URL, or the embedded one under DATA_DIR).
import fs from 'node:fs';
import path from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type Config, ConfigError, effectiveSettings, loadConfig, settingsHelp } from './config.js';
import { migrate } from './db/migrate.js';
import { createPool } from './db/pool.js';
import {
  findTicket,
  insertTicket,
  listAttachments,
  listTicketMessages,
  type StoredAttachment,
  type StoredTicketMessage,
  type Ticket,
} from './db/queries.js';
import { createLogger, type Logger } from './log.js';
import { replyAddress } from './mail/address.js';
import { PROJECT_ROOT } from './paths.js';
import { openDatabase, startService } from './service.js';

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `ticket-mx: the MX for helpdesk reply addresses (support+TKT-123@your.domain)

Usage: ticket-mx <command> [options]

Commands:
  serve                         run the SMTP server (and /healthz, /metrics)
  migrate                       apply database migrations and exit
  ticket create                 create a ticket and print its reply address
  ticket show <id>              show a ticket and the replies stored for it

Options:
  -h, --help                    help for any command (ticket-mx ticket create --help)

Configuration is read from environment variables only (see README.md). Without DATABASE_URL,
an embedded PostgreSQL is used under DATA_DIR (default ./data), shared with a running serve.`,
  serve: `Usage: ticket-mx serve

Runs the SMTP server on SMTP_HOST:SMTP_PORT (local profile 127.0.0.1:2525, production 0.0.0.0:25)
and /healthz, /metrics on HTTP_PORT. Applies pending migrations first. Stops gracefully on
SIGINT/SIGTERM: messages in flight are finished (committed or refused with 451) first.`,
  migrate: `Usage: ticket-mx migrate

Applies the numbered SQL migrations that the database lacks, under an advisory lock, and exits.`,
  ticket: `Usage: ticket-mx ticket <create|show> [options]

  ticket create --subject S --requester EMAIL [--id TKT-123] [--json]
  ticket show <id> [--json] [--full]`,
  'ticket create': `Usage: ticket-mx ticket create --subject S --requester EMAIL [--id TKT-123] [--json]

Creates a ticket and prints its id and the reply address staff answer to.
  --subject S         ticket subject (required)
  --requester EMAIL   the customer who opened it; may write to the ticket (required)
  --id TKT-123        use this id instead of the next free number
  --json              print the ticket as JSON`,
  'ticket show': `Usage: ticket-mx ticket show <id> [--json] [--full]

Shows a ticket and its messages: the reply text by default.
  --full              show each message's full text (with the quoted history) too
  --json              print { "ticket": {...}, "messages": [ { "id", "from", "subject", "text", "receivedAt", "attachments", ... } ] }`,
};

type Out = { out: (s: string) => void; err: (s: string) => void };
const stdio: Out = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) };

export async function main(argv: string[], io: Out = stdio): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`ticket-mx: ${err.message}\nRun 'ticket-mx --help' for usage.`);
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

async function run(argv: string[], io: Out): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '-h' || command === '--help' || command === 'help') {
    io.out(HELP.main!);
    return command ? 0 : 2;
  }
  if (command === '--version' || command === '-v') {
    io.out(
      (JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    );
    return 0;
  }
  switch (command) {
    case 'serve':
      if (wantsHelp(rest)) {
        help(io, 'serve');
        io.out(`\nEnvironment variables [default]:\n${settingsHelp()}`);
        return 0;
      }
      parse(rest, {});
      return serve(io);
    case 'migrate':
      if (wantsHelp(rest)) return help(io, 'migrate');
      parse(rest, {});
      return runMigrate(io);
    case 'ticket': {
      const [sub, ...args] = rest;
      if (!sub || sub === '-h' || sub === '--help') return help(io, 'ticket', !sub);
      if (sub === 'create') return wantsHelp(args) ? help(io, 'ticket create') : ticketCreate(args, io);
      if (sub === 'show') return wantsHelp(args) ? help(io, 'ticket show') : ticketShow(args, io);
      throw new UsageError(`unknown ticket command '${sub}' (create, show)`);
    }
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

const wantsHelp = (args: string[]) => args.includes('--help') || args.includes('-h');

function help(io: Out, topic: string, asError = false): number {
  (asError ? io.err : io.out)(HELP[topic]!);
  return asError ? 2 : 0;
}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(
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
function commandLogger(config: Config): Logger {
  return createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, process.stderr as never);
}

async function serve(io: Out): Promise<number> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  io.err(banner(config));
  const service = await startService(config, log);
  io.err(
    `ticket-mx: SMTP on ${config.smtpHost}:${service.smtp.port}, health on http://${config.httpHost}:${service.http.port}/healthz`,
  );
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        io.err(`ticket-mx: ${signal} again, exiting now`);
        process.exit(1);
      }
      stopping = true;
      log.info({ code: 'SERVICE_STOPPING', signal }, 'stopping: finishing messages in flight');
      service.close().then(resolve, (err: Error) => {
        log.error({ code: 'SERVICE_STOP_FAILED', err: err.message }, 'stop failed');
        resolve();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  log.flush();
  return 0;
}

/** Every effective setting, a column wide enough for the longest name, defaults marked. */
function banner(config: Config): string {
  const settings = effectiveSettings(config);
  const width = Math.max(...settings.map((s) => s.name.length)) + 2;
  const profile = `${config.profile} profile${config.profile === 'local' ? ' (DATABASE_URL unset)' : ''}`;
  return [`ticket-mx starting, ${profile}`]
    .concat(settings.map((s) => `  ${s.name.padEnd(width)}${s.value}${s.source === 'default' ? '  (default)' : ''}`))
    .join('\n');
}

async function runMigrate(io: Out): Promise<number> {
  const config = loadConfig();
  const db = await openDatabase(config, commandLogger(config));
  try {
    const applied = await migrate(db.url);
    io.out(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
    return 0;
  } finally {
    await db.embedded?.stop();
  }
}

/** Opens the database the way serve does, migrates it, and hands a pool to fn. */
async function withDatabase<T>(fn: (pool: ReturnType<typeof createPool>, config: Config) => Promise<T>): Promise<T> {
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

const EMAIL_RE = /^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$/;

async function ticketCreate(args: string[], io: Out): Promise<number> {
  const { values } = parse(args, {
    subject: { type: 'string' },
    requester: { type: 'string' },
    id: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.subject?.trim()) throw new UsageError('ticket create needs --subject');
  if (!values.requester || !EMAIL_RE.test(values.requester))
    throw new UsageError('ticket create needs --requester with an email address');
  const id = values.id === undefined ? undefined : normaliseTicketId(values.id);
  return withDatabase(async (pool, config) => {
    if (id && (await findTicket(pool, id))) throw new Error(`ticket ${id} already exists`);
    const ticket = await insertTicket(pool, {
      id,
      subject: values.subject!.trim(),
      requester: values.requester!.toLowerCase(),
    });
    const address = replyAddress(ticket.id, config);
    if (values.json) io.out(JSON.stringify({ ticket: ticketJson(ticket), replyAddress: address }, null, 2));
    else io.out(`${ticket.id}\nreply address: ${address}`);
    return 0;
  });
}

async function ticketShow(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, full: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError('ticket show needs exactly one ticket id');
  const id = normaliseTicketId(positionals[0]!);
  return withDatabase(async (pool) => {
    const ticket = await findTicket(pool, id);
    if (!ticket) {
      io.err(`ticket-mx: no such ticket ${id}`);
      return 1;
    }
    const messages = await listTicketMessages(pool, id);
    const attachments = await listAttachments(
      pool,
      messages.map((m) => m.rawMessageId),
    );
    const filesOf = (m: StoredTicketMessage) => attachments.get(m.rawMessageId) ?? [];
    if (values.json) {
      io.out(
        JSON.stringify(
          {
            ticket: ticketJson(ticket),
            messages: messages.map((m) => ({ ...messageJson(m, !!values.full), attachments: filesOf(m) })),
          },
          null,
          2,
        ),
      );
      return 0;
    }
    // what senders wrote goes to a terminal: no escape sequences or other control characters
    const out = (line: string) => io.out(line.replace(CONTROL_CHARACTERS, ''));
    out(
      `${ticket.id}  ${ticket.subject}\n  requester: ${ticket.requester}   status: ${ticket.status}   created: ${ticket.createdAt.toISOString()}`,
    );
    out(`  ${messages.length} message${messages.length === 1 ? '' : 's'}`);
    for (const m of messages) {
      out(
        `\n--- #${m.id}  ${m.receivedAt.toISOString()}  from ${m.authorName ? `${m.authorName} <${m.authorAddress}>` : (m.authorAddress ?? '(no From)')}${m.authorRole ? ` (${m.authorRole})` : ''}`,
      );
      out(`    subject: ${m.subject ?? ''}`);
      out(
        `    via ${m.clientIp} helo=${m.helo ?? ''} mail-from=<${m.mailFrom ?? ''}> tls=${m.tls ? `yes (${m.tlsCipher ?? '?'})` : 'no'}`,
      );
      if (m.authVerdict) {
        out(`    auth: ${describeChecks(m.authResults)}`);
        out(
          `    decision: ${m.authVerdict}${isMonitoredRefusal(m.authResults) ? ' (accepted because AUTH_POLICY=monitor)' : ''}: ${m.authReason ?? ''}`,
        );
      }
      for (const a of filesOf(m)) out(`    attachment: ${describeAttachment(a)}`);
      out('');
      out(indent(values.full ? m.fullText : m.replyText));
    }
    return 0;
  });
}

function normaliseTicketId(value: string): string {
  const m = /^tkt-(\d{1,18})$/i.exec(value.trim());
  if (!m) throw new UsageError(`'${value}' is not a ticket id (TKT-<number>)`);
  return `TKT-${m[1]}`;
}

interface StoredAuth {
  spf?: { result: string; domain: string; aligned: boolean };
  dkim?: { result: string; domain: string; selector: string; aligned: boolean }[];
  dmarc?: { result: string; policy: string | null };
  arc?: { result: string; sealers: string[] };
  decision?: { policy: string; wouldReject: boolean };
}

/** One line of verdicts: spf=pass (flamecrm.ru, aligned) dkim=pass (flamecrm.ru s=mail, aligned) … */
function describeChecks(results: unknown): string {
  const r = (results ?? {}) as StoredAuth;
  const aligned = (a: boolean) => (a ? ', aligned' : '');
  const parts = [
    r.spf ? `spf=${r.spf.result} (${r.spf.domain}${aligned(r.spf.aligned)})` : 'spf=?',
    r.dkim?.length
      ? r.dkim.map((d) => `dkim=${d.result} (${d.domain} s=${d.selector}${aligned(d.aligned)})`).join(' ')
      : 'dkim=none',
    r.dmarc ? `dmarc=${r.dmarc.result}${r.dmarc.policy ? ` (p=${r.dmarc.policy})` : ''}` : 'dmarc=?',
    r.arc ? `arc=${r.arc.result}${r.arc.sealers.length ? ` (${r.arc.sealers.join(' > ')})` : ''}` : 'arc=?',
  ];
  return parts.join(' ');
}

const isMonitoredRefusal = (results: unknown) => {
  const d = (results as StoredAuth | null)?.decision;
  return !!d && d.policy === 'monitor' && d.wouldReject;
};

const describeAttachment = (a: StoredAttachment) =>
  `${a.filename ?? '(no name)'} (${a.contentType}, ${a.size} bytes${a.inline ? ', inline' : ''}) sha256:${a.sha256.slice(0, 16)}…`;

const CONTROL_CHARACTERS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');

const ticketJson = (t: Ticket) => ({
  id: t.id,
  subject: t.subject,
  requester: t.requester,
  status: t.status,
  createdAt: t.createdAt.toISOString(),
});

function messageJson(m: StoredTicketMessage, full: boolean) {
  return {
    id: m.id,
    from: m.authorAddress,
    fromName: m.authorName,
    role: m.authorRole,
    subject: m.subject,
    text: m.replyText,
    ...(full ? { fullText: m.fullText, removedText: m.removedText, html: m.html } : {}),
    receivedAt: m.receivedAt.toISOString(),
    sentAt: m.sentAt?.toISOString() ?? null,
    messageId: m.messageId,
    inReplyTo: m.inReplyTo,
    references: m.references,
    envelope: {
      clientIp: m.clientIp,
      helo: m.helo,
      mailFrom: m.mailFrom,
      rcptTo: m.rcptTo,
      tls: m.tls,
      tlsCipher: m.tlsCipher,
    },
    auth: { verdict: m.authVerdict, reason: m.authReason, results: m.authResults, header: m.authHeader },
    rawMessageId: m.rawMessageId,
  };
}
