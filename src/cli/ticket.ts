// `ticket-mx ticket create|show`: tickets from the command line. What senders wrote is printed
// without control characters; --json is for scripts.
import {
  findTicket,
  insertTicket,
  listAttachments,
  listTicketMessages,
  type StoredAttachment,
  type StoredTicketMessage,
  type Ticket,
} from '../db/queries.js';
import { replyAddress } from '../mail/address.js';
import { type Command, normaliseTicketId, type Out, parse, UsageError, withDatabase } from './command.js';

export const ticketCreate: Command = {
  name: 'ticket create',
  summary: 'create a ticket and print its reply address',
  help: `Usage: ticket-mx ticket create --subject S --requester EMAIL [--id TKT-123] [--json]

Creates a ticket and prints its id and the reply address staff answer to.
  --subject S         ticket subject (required)
  --requester EMAIL   the customer who opened it; may write to the ticket (required)
  --id TKT-123        use this id instead of the next free number
  --json              print the ticket as JSON`,
  run: (args, io) => createTicket(args, io),
};

export const ticketShow: Command = {
  name: 'ticket show',
  summary: 'show a ticket and the replies stored for it',
  help: `Usage: ticket-mx ticket show <id> [--json] [--full]

Shows a ticket and its messages: the reply text by default.
  --full              show each message's full text (with the quoted history) too
  --json              print { "ticket": {...}, "messages": [ { "id", "from", "subject", "text",
                      "receivedAt", "attachments", ... } ] }`,
  run: (args, io) => showTicket(args, io),
};

const EMAIL_RE = /^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$/;

async function createTicket(args: string[], io: Out): Promise<number> {
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

async function showTicket(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, full: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError('ticket show needs exactly one ticket id');
  const id = normaliseTicketId(positionals[0]!);
  return withDatabase(
    async (pool) => {
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
    },
    { unused: ['MAIL_DOMAINS'] },
  );
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
