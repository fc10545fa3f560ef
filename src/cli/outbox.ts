// `ticket-mx outbox list|show|retry|run`: what ticket-mx has to deliver, has delivered or gave up on,
// and the sender as a process of its own (`run`, or `run --once` from cron or a script).
import { simpleParser } from 'mailparser';
import { outboxRowJson } from '../api/ticket-json.js';
import { loadConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { openDatabase } from '../db/open.js';
import {
  findOutboxRow,
  listOutbox,
  OUTBOX_STATUSES,
  type OutboxRow,
  type OutboxStatus,
  retryOutboxRow,
} from '../db/outbox.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../log.js';
import { composeNotification } from '../outbox/mail.js';
import { createSender, openOutbox } from '../outbox/open.js';
import { OutboxPruner } from '../outbox/prune.js';
import { type Command, commandLogger, type Out, parse, printable, UsageError, withDatabase } from './command.js';

export const outboxList: Command = {
  name: 'outbox list',
  summary: 'list notifications (and other deliveries), newest first',
  help: `Usage: ticket-mx outbox list [--status queued|sending|sent|failed|bounced]
                             [--limit N] [--json]

Lists outbox rows, newest first: id, status, kind, event, ticket, recipient,
attempts, and the remote server's last reply.
  --status S          only rows with this status
  --limit N           at most N rows (default 50)
  --json              print an array of rows`,
  run: (args, io) => list(args, io),
};

export const outboxShow: Command = {
  name: 'outbox show',
  summary: 'print the bytes of one notification',
  help: `Usage: ticket-mx outbox show <id> [--text]

Prints the exact bytes of an outbox row's mail as sent (or to be sent) on
stdout, with LF line ends: the CRLF ones sent are kept in the row (and without
a relay in DATA_DIR/outbox/<id>.eml). A summary line (status, recipient, last
reply) goes to stderr. A row not yet attempted is rendered as a preview: its
bytes are fixed at the first attempt. A webhook row prints the JSON body it
posts (before its first attempt, its payload).
  --text              print the headers and the decoded text part instead`,
  run: (args, io) => show(args, io),
};

export const outboxRetry: Command = {
  name: 'outbox retry',
  summary: 'send a failed or bounced notification again',
  help: `Usage: ticket-mx outbox retry <id>

Makes a failed, bounced or waiting row due now (the same bytes, the same
Message-ID); OUTBOX_MAX_AGE counts again from now. A running sender picks it up
at once.`,
  run: (args, io) => retry(args, io),
};

export const outboxRun: Command = {
  name: 'outbox run',
  summary: 'run the sender, as serve does (OUTBOX_SEND_IN_SERVE)',
  help: `Usage: ticket-mx outbox run [--once]

Delivers the outbox: wakes on LISTEN, claims due rows with FOR UPDATE SKIP
LOCKED (any number of senders may run), sends through OUTBOUND_SMTP_URL (or
writes DATA_DIR/outbox/<id>.eml when it is unset), retries with backoff up to
OUTBOX_MAX_AGE. Logs one JSON line per attempt on stdout. Deletes finished rows
older than OUTBOX_KEEP_SENT, as serve does: at start and every 10 minutes.
Stops on SIGINT/SIGTERM: sends in flight finish or are put back.
  --once              one attempt at everything due now and one pruning turn,
                      then exit; prints "sent N, deferred N, failed N" (exit 1
                      when something failed)`,
  run: (args, io) => runSender(args, io),
};

const STATUS_SET = new Set<string>(OUTBOX_STATUSES);

function outboxId(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new UsageError(`${command} needs exactly one outbox id`);
  const id = positionals[0]!.trim();
  if (!/^\d{1,18}$/.test(id)) throw new UsageError(`'${id}' is not an outbox id (a number)`);
  return id;
}

async function list(args: string[], io: Out): Promise<number> {
  const { values } = parse(args, { status: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } });
  if (values.status !== undefined && !STATUS_SET.has(values.status))
    throw new UsageError(`--status must be one of ${OUTBOX_STATUSES.join(', ')}`);
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit must be 1 to 10000');
  return withDatabase(async (pool) => {
    const rows = await listOutbox(pool, { status: values.status as OutboxStatus | undefined, limit });
    if (values.json) {
      io.out(JSON.stringify(rows.map(outboxRowJson), null, 2));
      return 0;
    }
    if (!rows.length) {
      io.out(values.status ? `no ${values.status} rows` : 'the outbox is empty');
      return 0;
    }
    for (const r of rows) io.out(printable(describeRow(r)));
    return 0;
  });
}

async function show(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, { text: { type: 'boolean' } }, true);
  const id = outboxId(positionals, 'outbox show');
  return withDatabase(async (pool, config) => {
    const row = await findOutboxRow(pool, id);
    if (!row) {
      io.err(`ticket-mx: no such outbox row ${id}`);
      return 1;
    }
    io.err(printable(describeRow(row)));
    let content = row.content;
    if (!content && row.kind === 'mail') {
      io.err('(not attempted yet: a preview; the bytes are fixed at the first attempt)');
      content = await composeNotification(pool, row, (await openOutbox(config, pool)).mail);
    }
    if (!content) {
      io.out(JSON.stringify(row.payload, null, 2));
      return 0;
    }
    if (!values.text) {
      io.out(content.toString('utf8').replace(/\r\n/g, '\n').replace(/\n$/, ''));
      return 0;
    }
    const parsed = await simpleParser(content);
    for (const line of parsed.headerLines) io.out(printable(decodedHeader(line, parsed.headers.get(line.key))));
    io.out('');
    io.out(printable((parsed.text ?? '').replace(/\n$/, '')));
    return 0;
  });
}

async function retry(args: string[], io: Out): Promise<number> {
  const { positionals } = parse(args, {}, true);
  const id = outboxId(positionals, 'outbox retry');
  return withDatabase(async (pool) => {
    const row = await retryOutboxRow(pool, id);
    if (row) {
      io.out(`outbox ${id} queued again: ${row.kind} to ${row.recipient}`);
      return 0;
    }
    const existing = await findOutboxRow(pool, id);
    io.err(
      existing
        ? `ticket-mx: outbox ${id} is ${existing.status}: only failed, bounced or queued rows are retried`
        : `ticket-mx: no such outbox row ${id}`,
    );
    return 1;
  });
}

async function runSender(args: string[], io: Out): Promise<number> {
  const { values } = parse(args, { once: { type: 'boolean' } });
  const config = loadConfig();
  // --once answers on stdout; a long-running sender logs there, like serve
  const log = values.once ? commandLogger(config) : createLogger(config.logLevel);
  const db = await openDatabase(config, log);
  // mail and webhooks each have OUTBOX_CONCURRENCY slots (src/outbox/sender.ts), plus the claim and LISTEN
  const pool = createPool({ connectionString: db.url, max: 2 * config.outboxConcurrency + 2, log });
  try {
    await migrate(db.url);
    const sender = createSender(await openOutbox(config, pool), { config, pool, databaseUrl: db.url, log });
    // as serve does (src/service.ts): a sender of its own must not leave the outbox growing
    const pruner = new OutboxPruner({ pool, keepMs: config.outboxKeepSentMs, log });
    if (values.once) {
      const counts = await sender.runOnce();
      await sender.close();
      // a failed turn is logged (OUTBOX_PRUNE_FAILED) and is not the sends' failure
      if (config.outboxKeepSentMs) await pruner.run();
      io.out(`sent ${counts.sent}, deferred ${counts.deferred}, failed ${counts.failed}`);
      return counts.failed ? 1 : 0;
    }
    await sender.start();
    pruner.start();
    io.err('ticket-mx: outbox sender running; Ctrl-C to stop');
    let signals = 0;
    let onSignal!: (signal: NodeJS.Signals) => void;
    await new Promise<void>((resolve) => {
      // as serve does: `on`, not `once`, so that a second Ctrl-C reaches us instead of killing
      // node by default and leaving an embedded PostgreSQL that nobody stops
      onSignal = (signal) => {
        signals++;
        if (signals === 1) {
          log.info({ code: 'SERVICE_STOPPING', signal }, 'stopping the outbox sender');
          Promise.all([sender.close(), pruner.close()]).then(() => resolve(), resolve);
          return;
        }
        io.err(`ticket-mx: ${signal} again: stopping PostgreSQL, exiting (sends in flight are put back)`);
        log.warn({ code: 'SERVICE_ABORTED', signal }, 'outbox sender stopped before its sends finished');
        if (signals > 2) process.exit(1);
        // PostgreSQL's fast shutdown ends our connections too; the pool is not waited for
        Promise.resolve(db.embedded?.stop())
          .catch(() => {})
          .finally(() => {
            log.flush();
            process.exit(1);
          });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    log.flush();
    return 0;
  } finally {
    await pool.end();
    await db.embedded?.stop();
  }
}

/** A header as a person reads it: encoded words decoded, one line; structured ones as they were. */
function decodedHeader(line: { key: string; line: string }, value: unknown): string {
  const name = line.line.slice(0, line.line.indexOf(':'));
  const v = value as { text?: unknown } | string | Date | undefined;
  const text =
    typeof v === 'string'
      ? v
      : v instanceof Date
        ? v.toUTCString()
        : typeof v?.text === 'string'
          ? v.text
          : line.line.slice(name.length + 1).trim();
  return `${name}: ${text.replace(/\s*\r?\n\s*/g, ' ')}`;
}

const EVENT_NAMES: Record<string, string> = {
  ticket_created: 'ticket created',
  staff_reply: 'staff reply',
  requester_reply: 'requester reply',
  stranger_reply: 'reply from a third party',
};

/** One line: `12  sent  mail  ticket created  TKT-1  to info@flamecrm.ru  attempt 1  …: 250 2.0.0 Ok`. */
export function describeRow(r: OutboxRow): string {
  const when =
    r.status === 'sent' && r.sentAt
      ? `sent ${r.sentAt.toISOString()}`
      : r.status === 'queued' || r.status === 'sending'
        ? `next ${r.nextAttemptAt.toISOString()}`
        : (r.lastAttemptAt?.toISOString() ?? '');
  return [
    r.id,
    r.status,
    r.kind,
    EVENT_NAMES[r.event] ?? r.event,
    r.ticketId ?? '-',
    `to ${r.recipient}`,
    `attempt ${r.attempts}`,
    `${when}${r.lastReply ? `: ${r.lastReply}` : ''}`,
  ].join('  ');
}

/** For ticket show: "notification to X bounced: 550 5.1.1 …". */
export function describeNotification(r: OutboxRow): string {
  const what = r.kind === 'mail' ? 'notification' : r.kind;
  const event = EVENT_NAMES[r.event] ?? r.event;
  const state =
    r.status === 'queued' || r.status === 'sending'
      ? `${r.status} (attempt ${r.attempts}, next ${r.nextAttemptAt.toISOString()})`
      : r.status === 'sent' && r.sentAt
        ? `sent ${r.sentAt.toISOString()}`
        : r.status;
  return `${what} ${r.id} to ${r.recipient} (${event}) ${state}${r.lastReply ? `: ${r.lastReply}` : ''}`;
}
