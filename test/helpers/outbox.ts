// Helpers for the outbox tests: reading a notification the way its recipient's server would
// (mailparser, mailauth against the loopback DNS), waiting for outbox rows, a DKIM key on disk.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import { simpleParser } from 'mailparser';
import type pg from 'pg';
import { expect } from 'vitest';
import { createResolver } from '../../src/mail/dns.js';
import { publishDkimKey, type TestDnsServer } from './dns-server.js';

export interface ReadMail {
  subject: string;
  from: string;
  to: string;
  replyTo: string;
  messageId: string;
  inReplyTo: string | null;
  references: string[];
  text: string;
  html: string;
  header(name: string): string | null;
}

export async function readMail(raw: Buffer): Promise<ReadMail> {
  const m = await simpleParser(raw);
  const one = (name: string) => {
    const v = m.headers.get(name);
    if (v === undefined) return null;
    return typeof v === 'string' ? v : ((v as { text?: string; value?: string }).text ?? String(v));
  };
  return {
    subject: m.subject ?? '',
    from: m.from?.value[0]?.address ?? '',
    to: (Array.isArray(m.to) ? m.to[0] : m.to)?.value[0]?.address ?? '',
    replyTo: m.replyTo?.value[0]?.address ?? '',
    messageId: m.messageId ?? '',
    inReplyTo: m.inReplyTo ?? null,
    references: m.references ? (Array.isArray(m.references) ? m.references : m.references.split(/\s+/)) : [],
    text: m.text ?? '',
    html: typeof m.html === 'string' ? m.html : '',
    header: one,
  };
}

/** The DKIM verdicts of mailauth for these bytes, keys from the loopback DNS server. */
export async function dkimResults(raw: Buffer, dns: TestDnsServer) {
  const resolver = createResolver({ servers: [dns.address], timeoutMs: 1000 });
  const r = await dkimVerify(raw, { resolver } as Parameters<typeof dkimVerify>[1]);
  return r.results.map((x) => ({ result: x.status.result, domain: x.signingDomain, selector: x.selector }));
}

/** A DKIM key pair: the public half published as `<selector>._domainkey.<domain>`, the private one in a file. */
export function dkimKeyFile(dns: TestDnsServer, domain: string, selector: string): { file: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-dkim-'));
  const file = path.join(dir, 'dkim.pem');
  fs.writeFileSync(file, publishDkimKey(dns, domain, selector));
  return { file, dir };
}

export interface OutboxRowOf {
  id: string;
  status: string;
  event: string;
  recipient: string;
  attempts: number;
  last_reply: string | null;
  message_id: string | null;
}

export async function outboxRows(pool: pg.Pool, ticketId?: string): Promise<OutboxRowOf[]> {
  const { rows } = await pool.query<OutboxRowOf>(
    `select id, status, event, recipient, attempts, last_reply, payload->>'messageId' as message_id
       from outbox where ($1::text is null or ticket_id = $1) order by id`,
    [ticketId ?? null],
  );
  return rows;
}

/** Polls until the row has this status (the sender works on its own time). */
export async function waitForStatus(pool: pg.Pool, id: string, status: string, timeoutMs = 20_000) {
  let row: OutboxRowOf | undefined;
  await expect
    .poll(
      async () => {
        const { rows } = await pool.query<OutboxRowOf>(
          `select id, status, event, recipient, attempts, last_reply, payload->>'messageId' as message_id
             from outbox where id = $1`,
          [id],
        );
        row = rows[0];
        return row?.status;
      },
      { timeout: timeoutMs, interval: 50 },
    )
    .toBe(status);
  return row!;
}
