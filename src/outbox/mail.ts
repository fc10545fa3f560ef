// The 'mail' kind of delivery: a notification rendered from the templates at its first attempt
// (text and HTML, threaded into what its recipient has seen of the ticket, Reply-To the ticket's
// address, DKIM-signed when a key is set) and sent with nodemailer's pooled SMTP transport through
// OUTBOUND_SMTP_URL, from a signed VERP envelope sender; or, with no relay, written to
// DATA_DIR/outbox/<id>.eml. What counts as sent, deferred or failed is decided here from the reply.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';
import DKIM from 'nodemailer/lib/dkim';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { Config } from '../config.js';
import { type ClaimedRow, loadNotificationContext } from '../db/outbox.js';
import type { Pool } from '../db/pool.js';
import { listAttachedFiles } from '../db/queries.js';
import { bounceAddress, replyAddress } from '../mail/address.js';
import { type Withheld, withheld, withheldNote } from './attachment-policy.js';
import { type Delivery, type DeliveryResult, PermanentFailure } from './delivery.js';
import type { MailPayload, NotificationEvent } from './notify.js';
import { escapeHtml, renderMail, type Templates, type TemplateValues } from './templates.js';

/** Older Message-IDs are dropped from References past this many (the newest are kept). */
const THREAD_LIMIT = 20;

export interface DkimKey {
  domain: string;
  selector: string;
  /** Parsed once: parsing a PEM key again for every signature costs more than the signature. */
  privateKey: crypto.KeyObject;
}

export interface MailSettings {
  config: Readonly<Config>;
  templates: Templates;
  verpSecret: string;
  dkim: DkimKey | null;
}

/** Reads DKIM_PRIVATE_KEY_FILE (at start: a bad key stops the start, not the first notification). */
export async function readDkimKey(config: Readonly<Config>): Promise<DkimKey | null> {
  if (!config.dkimPrivateKeyFile || !config.dkimSelector) return null;
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(await fs.readFile(config.dkimPrivateKeyFile, 'utf8'));
  } catch (err) {
    throw new Error(`DKIM_PRIVATE_KEY_FILE: cannot use ${config.dkimPrivateKeyFile}: ${(err as Error).message}`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa' || bits < 1024)
    throw new Error(
      `DKIM_PRIVATE_KEY_FILE: ${config.dkimPrivateKeyFile} must be an RSA key of at least 1024 bits (2048 advised); ` +
        `it is ${key.asymmetricKeyType}${bits ? ` of ${bits} bits` : ''}`,
    );
  return { domain: config.mailDomains[0]!, selector: config.dkimSelector, privateKey: key };
}

/** The notification's bytes: templates filled from the ticket and the message that caused it. */
export async function composeNotification(pool: Pool, row: ClaimedRow, s: MailSettings): Promise<Buffer> {
  const { config } = s;
  const payload = row.payload as unknown as MailPayload;
  const template = s.templates[row.event as NotificationEvent];
  if (!template) throw new PermanentFailure(`no template for the event ${row.event}`);
  if (!row.ticketId) throw new PermanentFailure('a notification without a ticket');
  const { ticket, message, thread } = await loadNotificationContext(
    pool,
    { id: row.id, ticketId: row.ticketId, ticketMessageId: row.ticketMessageId, recipient: row.recipient },
    THREAD_LIMIT,
  );
  if (!ticket) throw new PermanentFailure(`ticket ${row.ticketId} no longer exists`);
  const from = message?.authorAddress ?? ticket.requester;
  const ticketAddress = replyAddress(ticket.id, config);
  const values: TemplateValues = {
    ticketId: ticket.id,
    ticketSubject: ticket.subject,
    requester: ticket.requester,
    replyAddress: ticketAddress,
    from,
    author: message?.authorName ? `${message.authorName} <${from}>` : from,
    subject: message?.subject || ticket.subject,
    text: message?.replyText ?? '',
  };
  const mail = renderMail(template, values);
  const domain = config.mailDomains[0]!;
  // what an authenticated author attached goes along (a screenshot, an invoice), never a program;
  // inline images of their HTML do not (src/outbox/attachment-policy.ts)
  const found = message?.rawMessageId && message.hasFiles ? await listAttachedFiles(pool, message.rawMessageId) : [];
  const judged = found.map((f) => ({ ...f, why: withheld(f, message?.authVerdict ?? null) }));
  const files = judged.filter((f) => f.why === null);
  const note = withheldNote(
    judged.filter((f): f is typeof f & { why: Withheld } => f.why !== null),
    ticket.id,
    config.notifyLanguage,
  );
  if (note) {
    mail.text = `${mail.text.trimEnd()}\n\n${note}\n`;
    const shown = `<p style="color:#666">${escapeHtml(note).replace(/\n/g, '<br>')}</p>\n`;
    mail.html = mail.html.includes('</body>') ? mail.html.replace('</body>', `${shown}</body>`) : mail.html + shown;
  }
  const composed = new MailComposer({
    from: { name: mail.fromName ?? '', address: `${config.supportLocalPart}@${domain}` },
    to: row.recipient,
    replyTo: ticketAddress,
    subject: mail.subject,
    messageId: payload.messageId,
    date: new Date(),
    ...(thread.length ? { inReplyTo: thread.at(-1), references: thread } : {}),
    headers: {
      'X-Ticket-ID': ticket.id,
      // RFC 3834: robots (out-of-office, vacation) do not answer; Exchange honours the second
      'Auto-Submitted': 'auto-generated',
      'X-Auto-Response-Suppress': 'All',
    },
    text: mail.text,
    html: mail.html,
    attachments: files.map((f) => ({
      content: f.bytes,
      contentType: f.contentType,
      filename: f.filename ?? 'attachment',
    })),
    newline: 'windows',
    // nothing is read from files or URLs: the content is all here
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  const bytes = await composed.compile().build();
  return s.dkim ? dkimSigned(bytes, s.dkim) : bytes;
}

/** nodemailer's DKIM signer (relaxed/relaxed, rsa-sha256), the signature header prepended. */
function dkimSigned(bytes: Buffer, key: DkimKey): Promise<Buffer> {
  const signer = new DKIM({ domainName: key.domain, keySelector: key.selector, privateKey: key.privateKey });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const out = signer.sign(bytes);
    out.on('data', (c: Buffer) => chunks.push(c));
    out.once('end', () => resolve(Buffer.concat(chunks)));
    out.once('error', reject);
  });
}

interface RelayOptions {
  host: string;
  port: number | undefined;
  secure: boolean;
  auth: { user: string; pass: string } | undefined;
}

/** smtp://user:password@host:port or smtps://…; user and password may be percent-encoded. */
export function parseRelayUrl(url: string): RelayOptions {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : undefined,
    secure: u.protocol === 'smtps:',
    auth: u.username ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : undefined,
  };
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
}

/**
 * A 5xx refuses the mail for good, with two exceptions that are ours to fix and must not lose a
 * notification: a refused login (wrong password in OUTBOUND_SMTP_URL) and TLS trouble.
 */
export function judgeSmtpError(err: SmtpError): DeliveryResult {
  const reply = (err.response ?? err.message ?? String(err)).trim();
  const permanent =
    typeof err.responseCode === 'number' &&
    err.responseCode >= 500 &&
    err.responseCode < 600 &&
    err.code !== 'EAUTH' &&
    err.code !== 'ETLS';
  return permanent
    ? { outcome: 'failed', reply }
    : {
        outcome: 'deferred',
        reply: err.code ? `${reply} [${err.code}]` : reply,
        // nodemailer's connection, greeting and socket timeouts: the relay hangs (sender.ts then goes one at a time)
        ...(err.code === 'ETIMEDOUT' ? { timedOut: true } : {}),
      };
}

export function mailDelivery(pool: Pool, s: MailSettings): Delivery {
  const { config } = s;
  const domain = config.mailDomains[0]!;
  const envelopeFrom = (row: ClaimedRow) => bounceAddress(row.id, s.verpSecret, domain);
  const prepare = (row: ClaimedRow) => composeNotification(pool, row, s);

  if (!config.outboundSmtpUrl) {
    const dir = path.join(config.dataDir, 'outbox');
    return {
      kind: 'mail',
      target: `files in ${dir} (OUTBOUND_SMTP_URL is unset: nothing leaves the machine)`,
      prepare,
      async deliver(row, content) {
        await fs.mkdir(dir, { recursive: true });
        const file = path.join(dir, `${row.id}.eml`);
        await fs.writeFile(`${file}.tmp`, content);
        await fs.rename(`${file}.tmp`, file);
        return { outcome: 'sent', reply: `written to ${file}` };
      },
      close: async () => {},
    };
  }

  const relay = parseRelayUrl(config.outboundSmtpUrl);
  const timeout = config.outboxSendTimeoutMs;
  const transport = nodemailer.createTransport({
    pool: true,
    ...relay,
    name: config.smtpHostname,
    maxConnections: config.outboxConcurrency,
    maxMessages: 100,
    // a failed send is the sender's to retry (fenced, logged), never resent by the pool on its own
    maxRequeues: 0,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    tls: { rejectUnauthorized: config.outboundSmtpTlsVerify, servername: relay.host },
    logger: false,
  });
  return {
    kind: 'mail',
    target: `${relay.secure ? 'smtps' : 'smtp'}://${relay.host}${relay.port ? `:${relay.port}` : ''}`,
    prepare,
    async deliver(row, content) {
      try {
        const info = await transport.sendMail({
          envelope: { from: envelopeFrom(row), to: [row.recipient] },
          raw: content,
        });
        if (info.rejected?.length) return { outcome: 'failed', reply: String(info.response ?? 'recipient rejected') };
        return { outcome: 'sent', reply: String(info.response ?? '').trim() };
      } catch (err) {
        return judgeSmtpError(err as SmtpError);
      }
    },
    close: async () => transport.close(),
  };
}
