// `ticket-mx ticket create|reply|show|list|close`: tickets from the command line, in our own table
// or the CRM's behind the tickets view, with the notifications they queue. What senders wrote is
// printed without control characters; --json is for scripts.
import { ticketDocument, ticketJson, UNBOUNDED } from '../api/ticket-json.js';
import type { VariableName } from '../config.js';
import { listTicketOutbox } from '../db/outbox.js';
import { withTransaction } from '../db/pool.js';
import {
  type ForwardedMessage,
  findTicket,
  isReadOnlyView,
  listAttachments,
  listRefusals,
  listTicketMessages,
  listTickets,
  type StoredAttachment,
  type StoredTicketMessage,
  setTicketStatus,
} from '../db/queries.js';
import { EMAIL_ADDRESS_RE, replyAddress } from '../mail/address.js';
import { canonicalTicketId, NEW_TICKET_ID_RE } from '../mail/ticket-id.js';
import { closedStatus, isClosed } from '../mail/ticket-status.js';
import { notifyRules } from '../outbox/notify.js';
import { oneLine } from '../outbox/templates.js';
import { createTicketWithMessage, NoSuchTicket, storeStaffAnswer } from '../outbox/tickets.js';
import { type Command, normaliseTicketId, type Out, parse, printable, UsageError, withDatabase } from './command.js';
import { describeNotification } from './outbox.js';

export const ticketCreate: Command = {
  name: 'ticket create',
  summary: 'create a ticket, notify staff, print its reply address',
  help: `Usage: ticket-mx ticket create --subject S --requester EMAIL [--message TEXT]
                               [--id TKT-123] [--json]

Creates a ticket and prints its id and the reply address staff answer to. In
the same transaction the "ticket created" notification to NOTIFY_STAFF_TO is
queued (the sender of serve, or ticket-mx outbox run, delivers it).
  --subject S         ticket subject (required)
  --requester EMAIL   the customer who opened it; may write to the ticket
                      (required)
  --message TEXT      the first message, from the requester: stored in the
                      ticket and shown in the staff notification
  --id TKT-123        use this id instead of the next free number (no leading
                      zeros)
  --json              print { "ticket", "replyAddress", "messageId",
                      "outbox": [ids] }`,
  run: (args, io) => createTicket(args, io),
};

export const ticketReply: Command = {
  name: 'ticket reply',
  summary: 'store an answer of staff and mail it to the requester',
  help: `Usage: ticket-mx ticket reply <id> --from EMAIL --message TEXT [--name NAME]
                              [--subject S] [--json]

Stores an answer typed by staff (as the HTTP API does) and, in the same
transaction, queues its mail to the ticket's requester: from the support
address, Reply-To the ticket, threaded into what the requester has seen
(NOTIFY_REQUESTER=false: nothing is mailed). A closed ticket is refused.
  --from EMAIL        the staff member who answers (required)
  --name NAME         their name
  --message TEXT      the answer (required)
  --subject S         the answer's own subject, stored with it; not empty (the
                      mail's subject is the ticket's: Re: [TKT-…] subject)
  --json              print { "messageId", "outbox": [ids] }`,
  run: (args, io) => replyToTicket(args, io),
};

export const ticketShow: Command = {
  name: 'ticket show',
  summary: 'show a ticket and the replies stored for it',
  help: `Usage: ticket-mx ticket show <id> [--full] [--json]

Shows a ticket, its messages (the reply text by default; by received time, then
id), its notifications with their status and the mail refused for it.
  --full              show each message's full text (quoted history included)
  --json              print the JSON of GET /v1/tickets/{id}, nothing cut:
                      { "ticket": {...},
                        "messages": [ { "id", "from", "subject", "text",
                          "forwarded", "receivedAt", "attachments", ... } ],
                        "notifications": [ { "id", "to", "event", "status",
                          "lastReply", ... } ],
                        "refused": [ { "id", "refusedAt", "code", "reply",
                          "reason", "fromAddress", "messageId", "clientIp" } ],
                        "messagesMore", "messagesNext", "notificationsMore",
                        "notificationsNext", "refusedMore", "refusedNext" }
                      the API's paging fields: here each ...More is false, and
                      each ...Next the id of the last one listed ("0": none)
A message that forwards another shows the note above it, then "forwarded from X
on D" with the forwarded text. Mail to the ticket refused at DATA (550 …) is
listed after the messages with the reply it got and why (at most 20 refusals a
ticket an hour are kept).`,
  run: (args, io) => showTicket(args, io),
};

export const ticketList: Command = {
  name: 'ticket list',
  summary: 'list tickets, newest first',
  help: `Usage: ticket-mx ticket list [--status S] [--limit N] [--json]

Lists tickets, newest first, with their status and number of messages.
  --status S          only tickets with this status (compared without case:
                      open, closed, …)
  --limit N           at most N tickets (default 100)
  --json              print { "tickets": [ { "id", "subject", "requester",
                      "status", "createdAt", "messages", "lastMessageAt" } ] }`,
  run: (args, io) => listAll(args, io),
};

export const ticketClose: Command = {
  name: 'ticket close',
  summary: 'close a ticket: replies to it are refused from then on',
  help: `Usage: ticket-mx ticket close <id> [--json]

Sets the ticket's status to the first of TICKET_CLOSED_STATUSES (default
closed). From then on, mail to the ticket is refused at RCPT with 550 5.1.1.
Closing a closed ticket changes nothing.
  --json              print the ticket as JSON`,
  run: (args, io) => closeTicket(args, io),
};

/** What commands that only read need not be given: MAIL_DOMAINS names no reply address here. */
const READ_ONLY = { unused: ['MAIL_DOMAINS'] as VariableName[] };

/** The error of a write to the CRM's tickets view that has no way to take it, with what to do instead. */
function readOnlyView(err: unknown, what: string): unknown {
  if (!isReadOnlyView(err)) return err;
  return new Error(
    `${what}: tickets is a view over the CRM's tickets and does not take this (${(err as Error).message}); ` +
      'do it in the CRM, or give the view an INSTEAD OF trigger (see deploy/crm-view.sql)',
  );
}

/** A new ticket's id: one number is one ticket, so TKT-0042 is refused beside TKT-42 (src/mail/ticket-id.ts). */
function newTicketId(value: string): string {
  const id = normaliseTicketId(value);
  if (!NEW_TICKET_ID_RE.test(id))
    throw new UsageError(`'${value}' has leading zeros: a ticket id is written ${canonicalTicketId(id)}`);
  return id;
}

async function createTicket(args: string[], io: Out): Promise<number> {
  const { values } = parse(args, {
    subject: { type: 'string' },
    requester: { type: 'string' },
    message: { type: 'string' },
    id: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.subject?.trim()) throw new UsageError('ticket create needs --subject');
  if (!values.requester || !EMAIL_ADDRESS_RE.test(values.requester))
    throw new UsageError('ticket create needs --requester with an email address');
  const id = values.id === undefined ? undefined : newTicketId(values.id);
  return withDatabase(async (pool, config) => {
    if (id && (await findTicket(pool, id))) throw new Error(`ticket ${id} already exists`);
    const created = await withTransaction(pool, (tx) =>
      createTicketWithMessage(
        tx,
        {
          id,
          subject: values.subject!.trim(),
          requester: values.requester!,
          message: values.message?.trim() ? { text: values.message.trim() } : undefined,
          source: 'cli',
        },
        notifyRules(config),
      ),
    ).catch((err: unknown) => {
      throw readOnlyView(err, 'ticket create');
    });
    const { ticket } = created;
    const address = replyAddress(ticket.id, config);
    if (values.json) {
      const json = { ticket: ticketJson(ticket), replyAddress: address, messageId: created.messageId };
      io.out(JSON.stringify({ ...json, outbox: created.outboxIds }, null, 2));
      return 0;
    }
    io.out(`${ticket.id}\nreply address: ${address}`);
    io.out(
      created.outboxIds.length
        ? `staff notification queued: outbox ${created.outboxIds.join(', ')} (ticket-mx outbox show ${created.outboxIds[0]})`
        : 'no staff notification: NOTIFY_STAFF_TO is empty',
    );
    return 0;
  });
}

async function replyToTicket(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      from: { type: 'string' },
      name: { type: 'string' },
      message: { type: 'string' },
      subject: { type: 'string' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (positionals.length !== 1) throw new UsageError('ticket reply needs exactly one ticket id');
  const id = normaliseTicketId(positionals[0]!);
  if (!values.from || !EMAIL_ADDRESS_RE.test(values.from))
    throw new UsageError('ticket reply needs --from with an email address');
  if (!values.message?.trim()) throw new UsageError('ticket reply needs --message');
  // given, it says something: an empty one is a mistake, not a subject
  if (values.subject !== undefined && !values.subject.trim())
    throw new UsageError('ticket reply --subject must not be empty (leave it out: the answer has none of its own)');
  return withDatabase(async (pool, config) => {
    // as the API does: a closed ticket takes no more messages, typed or mailed
    const ticket = await findTicket(pool, id);
    if (ticket && isClosed(ticket.status, config)) {
      io.err(`ticket-mx: ticket ${id} is closed (status ${ticket.status}) and takes no more messages`);
      return 1;
    }
    try {
      const stored = await withTransaction(pool, (tx) =>
        storeStaffAnswer(
          tx,
          {
            ticketId: id,
            author: { address: values.from!, name: values.name },
            text: values.message!.trim(),
            subject: values.subject?.trim() ?? null,
            source: 'cli',
          },
          notifyRules(config),
        ),
      );
      if (values.json) io.out(JSON.stringify({ messageId: stored.messageId, outbox: stored.outboxIds }, null, 2));
      else
        io.out(
          `message ${stored.messageId} stored in ${id}\n${
            stored.outboxIds.length
              ? `mail to the requester queued: outbox ${stored.outboxIds.join(', ')}`
              : 'nothing mailed: NOTIFY_REQUESTER=false, or the requester wrote it'
          }`,
        );
      return 0;
    } catch (err) {
      if (!(err instanceof NoSuchTicket)) throw err;
      io.err(`ticket-mx: no such ticket ${id}`);
      return 1;
    }
  });
}

async function showTicket(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, full: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError('ticket show needs exactly one ticket id');
  const id = normaliseTicketId(positionals[0]!);
  return withDatabase(async (pool) => {
    const ticket = await findTicket(pool, id);
    if (!ticket) {
      io.err(`ticket-mx: no such ticket ${id}`);
      return 1;
    }
    if (values.json) {
      // in the order the text below prints them (the API's pages go by id, which is their cursor)
      const bounds = { ...UNBOUNDED, byReceived: true };
      io.out(JSON.stringify(await ticketDocument(pool, ticket, !!values.full, bounds), null, 2));
      return 0;
    }
    const messages = await listTicketMessages(pool, id);
    const refused = await listRefusals(pool, id);
    const attachments = await listAttachments(
      pool,
      messages.flatMap((m) => (m.rawMessageId ? [m.rawMessageId] : [])),
    );
    const filesOf = (m: StoredTicketMessage) => (m.rawMessageId && attachments.get(m.rawMessageId)) || [];
    const notifications = await listTicketOutbox(pool, id);
    // what senders wrote goes to a terminal: no escape sequences or other control characters
    const out = (line: string) => io.out(printable(line));
    // a value of one line (a subject, a name) stays on its line: an LF in it would start a line of
    // its own, one that could pass for ours ("--- #…", "auth: …")
    const line = (v: string | null | undefined) => oneLine(v ?? '');
    out(
      `${ticket.id}  ${line(ticket.subject)}\n  requester: ${line(ticket.requester)}   status: ${line(ticket.status)}   created: ${ticket.createdAt.toISOString()}`,
    );
    out(`  ${messages.length} message${messages.length === 1 ? '' : 's'}`);
    for (const m of messages) {
      out(
        `\n--- #${m.id}  ${m.receivedAt.toISOString()}  from ${m.authorName ? `${line(m.authorName)} <${line(m.authorAddress)}>` : m.authorAddress ? line(m.authorAddress) : '(no From)'}${m.authorRole ? ` (${ROLE_NAMES[m.authorRole] ?? m.authorRole})` : ''}`,
      );
      out(`    subject: ${line(m.subject)}`);
      if (m.source !== 'smtp') out(`    via ${m.source === 'cli' ? 'the command line' : 'the HTTP API'}`);
      else
        out(
          `    via ${m.clientIp} helo=${line(m.helo)} mail-from=<${line(m.mailFrom)}> tls=${m.tls ? `yes (${m.tlsCipher ?? '?'})` : 'no'}`,
        );
      if (m.authVerdict) {
        out(`    auth: ${describeChecks(m.authResults)}`);
        out(
          `    decision: ${m.authVerdict}${isMonitoredRefusal(m.authResults) ? ' (accepted because AUTH_POLICY=monitor)' : ''}: ${m.authReason ?? ''}`,
        );
      }
      for (const a of filesOf(m)) out(`    attachment: ${describeAttachment(a)}`);
      out('');
      if (values.full) out(indent(m.fullText));
      else {
        if (m.replyText || !m.forwarded) out(indent(m.replyText));
        if (m.forwarded) {
          if (m.replyText) out('');
          out(indent(describeForwarded(m.forwarded)));
        }
      }
    }
    if (notifications.length) out(`\n  ${notifications.length} notification${notifications.length === 1 ? '' : 's'}`);
    for (const n of notifications) out(`    ${describeNotification(n)}`);
    // refused mail left no message; why it was refused is kept (20 an hour at most)
    if (refused.length) out(`\n  ${refused.length} refused at DATA`);
    for (const r of refused)
      out(
        `  refused ${r.refusedAt.toISOString()}  from ${r.fromAddress ? line(r.fromAddress) : '(no From)'} via ${r.clientIp ?? '?'}` +
          `${r.messageId ? `  ${line(r.messageId)}` : ''}\n    ${line(r.reply)}${r.reason ? `\n    ${line(r.reason)}` : ''}`,
      );
    return 0;
  }, READ_ONLY);
}

async function listAll(args: string[], io: Out): Promise<number> {
  const { values } = parse(args, { status: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } });
  const limit = values.limit === undefined ? 100 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a whole number of at least 1');
  if (values.status !== undefined && !values.status.trim()) throw new UsageError('--status needs a status');
  return withDatabase(async (pool) => {
    const tickets = await listTickets(pool, { status: values.status?.trim() ?? null, limit });
    if (values.json) {
      const json = tickets.map((t) => ({
        ...ticketJson(t),
        messages: t.messages,
        lastMessageAt: t.lastMessageAt?.toISOString() ?? null,
      }));
      io.out(JSON.stringify({ tickets: json }, null, 2));
      return 0;
    }
    if (!tickets.length) {
      io.err(values.status ? `no tickets with status ${values.status}` : 'no tickets yet');
      return 0;
    }
    const width = (f: (t: (typeof tickets)[number]) => string) => Math.max(...tickets.map((t) => f(t).length));
    const idWidth = width((t) => t.id);
    const statusWidth = width((t) => t.status);
    for (const t of tickets)
      io.out(
        `${t.id.padEnd(idWidth)}  ${t.status.padEnd(statusWidth)}  ${t.createdAt.toISOString().slice(0, 16)}Z  ` +
          printable(`${String(t.messages).padStart(4)} msg  ${t.requester}  ${t.subject}`),
      );
    if (tickets.length === limit) io.err(`(the newest ${limit}; --limit N for more)`);
    return 0;
  }, READ_ONLY);
}

async function closeTicket(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError('ticket close needs exactly one ticket id');
  const id = normaliseTicketId(positionals[0]!);
  return withDatabase(async (pool, config) => {
    const ticket = await findTicket(pool, id);
    if (!ticket) {
      io.err(`ticket-mx: no such ticket ${id}`);
      return 1;
    }
    const wasClosed = isClosed(ticket.status, config);
    const closed = wasClosed
      ? ticket
      : await setTicketStatus(pool, id, closedStatus(config)).catch((err: unknown) => {
          throw readOnlyView(err, 'ticket close');
        });
    if (!closed) throw new Error(`ticket ${id} went away while it was being closed`);
    if (!isClosed(closed.status, config))
      throw new Error(
        `ticket ${id} has status ${closed.status} after closing: ` +
          'the tickets view maps statuses differently from TICKET_CLOSED_STATUSES ' +
          `(${config.ticketClosedStatuses.join(',')})`,
      );
    if (values.json) io.out(JSON.stringify({ ticket: ticketJson(closed), changed: !wasClosed }, null, 2));
    else io.out(wasClosed ? `${id} was already closed (${closed.status})` : `${id} closed (${closed.status})`);
    return 0;
  });
}

interface StoredAuth {
  spf?: { result: string; domain: string; aligned: boolean };
  dkim?: { result: string; domain: string; selector: string; aligned: boolean }[];
  dmarc?: { result: string; policy: string | null };
  arc?: { result: string; sealers: string[] };
  decision?: { policy: string; wouldReject: boolean };
}

/** One line of verdicts: spf=pass (flamecrm.ru, aligned) dkim=pass (flamecrm.ru s=mail, aligned) … */
/** The author's role as the text shows it; --json and the API keep the stored word. */
const ROLE_NAMES: Record<string, string> = {
  stranger: 'third party: neither the requester nor staff',
};

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

/** "forwarded from Ann <a@b> on Tue, 4 Mar 2025 10:10 (subject)" and the forwarded text below. */
function describeForwarded(f: ForwardedMessage): string {
  const head = `forwarded from ${f.from ? oneLine(f.from) : '(unknown sender)'}${f.date ? ` on ${oneLine(f.date)}` : ''}`;
  const subject = f.subject ? `\nsubject: ${oneLine(f.subject)}` : '';
  return `${head}${subject}\n${f.text
    .split('\n')
    .map((l) => `| ${l}`.trimEnd())
    .join('\n')}`;
}

const describeAttachment = (a: StoredAttachment) =>
  `${a.filename ? oneLine(a.filename) : '(no name)'} (${oneLine(a.contentType)}, ${a.size} bytes${a.inline ? ', inline' : ''}) sha256:${a.sha256.slice(0, 16)}…`;

const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
