// A genuine staff message counts only in the ticket it names (AUTH_BIND_STAFF): the envelope
// recipient is not signed, so a customer holding one staff-signed message could otherwise send it
// again, unchanged, to any ticket, where it would be stored as staff's answer and mailed to that
// ticket's requester. Real server, real PostgreSQL, DKIM keys in the loopback DNS; 127.0.0.9 is a
// server flamecrm.ru's SPF does not list (only the signature can authenticate), 127.0.0.1 one it does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notificationMessageId } from '../../src/outbox/notify.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { loadZones, publishDkimKey, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { dkimSigned } from '../helpers/mail-auth.js';
import { SMTP_ZONES, startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

let db: TestDatabase;
let dns: TestDnsServer;
let enforce: TestServer;
let monitor: TestServer;
let unbound: TestServer;
let listed: TestServer;
let key: string;
let subdomainKey: string;

const ENV = { STAFF_SENDERS: '@flamecrm.ru', NOTIFY_REQUESTER: 'true' };

beforeAll(async () => {
  db = await createTestDatabase();
  dns = await startDnsServer(loadZones(SMTP_ZONES));
  key = publishDkimKey(dns, 'flamecrm.ru', 'mail');
  // a subdomain delegated to a mailing service, whose account holders may get this key applied
  subdomainKey = publishDkimKey(dns, 'mail.flamecrm.ru', 's1');
  await insertTestTicket(db.pool, 'TKT-2001', 'anna@example.ru');
  await insertTestTicket(db.pool, 'TKT-2002', 'boris@example.ru');
  enforce = await startTestServer(db.url, { ...ENV, AUTH_POLICY: 'enforce' }, dns);
  monitor = await startTestServer(db.url, { ...ENV, AUTH_POLICY: 'monitor' }, dns);
  unbound = await startTestServer(db.url, { ...ENV, AUTH_POLICY: 'enforce', AUTH_BIND_STAFF: 'false' }, dns);
  listed = await startTestServer(
    db.url,
    { ...ENV, AUTH_POLICY: 'enforce', STAFF_DKIM_DOMAINS: 'mail.flamecrm.ru' },
    dns,
  );
});

afterAll(async () => {
  await Promise.all([enforce?.close(), monitor?.close(), unbound?.close(), listed?.close()]);
  await dns?.close();
  await db?.drop();
});

let n = 0;
/** What staff write: to the customer with the ticket in Cc, or an answer to a notification. */
const staffMail = (headers: { to: string; subject: string; extra?: string[] }, headerList?: string) =>
  dkimSigned(
    buildMessage({
      from: 'Иван <ivan@flamecrm.ru>',
      to: headers.to,
      subject: headers.subject,
      messageId: `<staff-${++n}-${Date.now()}@flamecrm.ru>`,
      headers: headers.extra,
      body: 'Мы заменили картридж, попробуйте ещё раз.',
    }),
    'flamecrm.ru',
    'mail',
    key,
    headerList ? { headerList } : {},
  );

const messageIdOf = (message: Buffer) => /^Message-ID: (<[^>]+>)/im.exec(message.toString())![1]!;
const send = (server: TestServer, message: Buffer, ticket: string, ip = '127.0.0.9') =>
  deliver(server.port, { ip, from: 'ivan@flamecrm.ru', to: [`support+${ticket}@flamecrm.ru`], message });
const stored = async (message: Buffer) =>
  (
    await db.pool.query(
      `select m.ticket_id, m.auth_verdict, m.auth_results->'decision' as decision,
              (select count(*)::int from outbox o where o.ticket_message_id = m.id) as notifications
         from ticket_messages m where m.message_id = $1 order by m.id`,
      [messageIdOf(message)],
    )
  ).rows;

describe('AUTH_BIND_STAFF (default on)', () => {
  it('takes a staff message in the ticket its signed Cc names, and refuses it sent again to another ticket', async () => {
    const message = await staffMail({
      to: 'Анна <anna@example.ru>, support+TKT-2001@flamecrm.ru',
      subject: 'Картридж',
      extra: ['Cc: support+TKT-2001@flamecrm.ru'],
    });
    expect((await send(enforce, message, 'TKT-2001')).short).toBe('250 2.0.0');

    const replayed = await send(enforce, message, 'TKT-2002');
    expect(replayed.short).toBe('550 5.7.1');
    expect(replayed.text).toBe(
      "Staff signature does not name TKT-2002: put the ticket's address in To or Cc, or reply to its notification",
    );
    const rows = await stored(message);
    expect(rows.map((r) => r.ticket_id)).toEqual(['TKT-2001']); // nothing in TKT-2002, nothing mailed to boris
    const line = enforce.logs.filter((l) => l.messageId === messageIdOf(message)).at(-1);
    expect(line).toMatchObject({ code: 'DATA_AUTH_REJECTED', auth: 'AUTH_NOT_BOUND', role: 'staff' });
    expect(String(line!.reason)).toContain('no field it covers names TKT-2002');
  });

  it('binds by any signed field that names the ticket: To, [TKT-…] in Subject, a notification in In-Reply-To', async () => {
    const toOnly = await staffMail({ to: 'support+TKT-2002@flamecrm.ru', subject: 'Картридж' });
    const subjectOnly = await staffMail({ to: 'boris@example.ru', subject: 'Re: [TKT-2002] Картридж' });
    // signed as Office 365 signs: From, Date, Subject, Message-ID, In-Reply-To, not To (and the MIME
    // fields: Content-Transfer-Encoding too, which Office 365 leaves out, see AUTH_MIME_UNSIGNED)
    const inReplyTo = await staffMail(
      {
        to: 'support+TKT-2002@flamecrm.ru',
        subject: 'RE: Картридж',
        extra: [`In-Reply-To: ${notificationMessageId('TKT-2002', 'flamecrm.ru')}`],
      },
      'from:date:subject:message-id:in-reply-to:content-type:mime-version:content-transfer-encoding',
    );
    for (const message of [toOnly, subjectOnly, inReplyTo]) {
      expect((await send(enforce, message, 'TKT-2002')).short).toBe('250 2.0.0');
      expect(await stored(message)).toMatchObject([{ ticket_id: 'TKT-2002', auth_verdict: 'AUTH_ACCEPTED' }]);
    }
  });

  it('does not take a name from a field the signature leaves out (anyone could have added or changed it)', async () => {
    const message = await staffMail(
      { to: 'support+TKT-2002@flamecrm.ru', subject: 'Картридж' },
      'from:date:message-id',
    );
    const r = await send(enforce, message, 'TKT-2002');
    expect(r.short).toBe('550 5.7.1');
    expect(await stored(message)).toEqual([]);
  });

  it('needs no named ticket when SPF authenticates the staff member (sent now by their own servers)', async () => {
    const message = await staffMail({ to: 'anna@example.ru', subject: 'Картридж' });
    expect((await send(enforce, message, 'TKT-2001', '127.0.0.1')).short).toBe('250 2.0.0');
  });

  it('under AUTH_POLICY=monitor stores the replay with its finding and mails nobody', async () => {
    const message = await staffMail({ to: 'support+TKT-2001@flamecrm.ru', subject: 'Re: [TKT-2001] Картридж' });
    expect((await send(monitor, message, 'TKT-2001')).short).toBe('250 2.0.0');
    expect((await send(monitor, message, 'TKT-2002')).short).toBe('250 2.0.0');
    const rows = await stored(message);
    expect(rows).toMatchObject([
      { ticket_id: 'TKT-2001', auth_verdict: 'AUTH_ACCEPTED', notifications: 1 },
      { ticket_id: 'TKT-2002', auth_verdict: 'AUTH_NOT_BOUND', notifications: 0 },
    ]);
    expect(rows[1].decision).toMatchObject({ wouldReject: true, wouldReply: { code: 550, enhanced: '5.7.1' } });
  });
});

describe('AUTH_BIND_STAFF=false', () => {
  it('takes a staff signature in any ticket, as before', async () => {
    const message = await staffMail({ to: 'support+TKT-2001@flamecrm.ru', subject: 'Re: [TKT-2001] Картридж' });
    expect((await send(unbound, message, 'TKT-2002')).short).toBe('250 2.0.0');
    expect(await stored(message)).toMatchObject([{ ticket_id: 'TKT-2002', auth_verdict: 'AUTH_ACCEPTED' }]);
  });
});

describe('staff signed by a subdomain of their domain (STAFF_DKIM_DOMAINS)', () => {
  /** Named in its signed To and Subject, as the binding wants: only d= is not flamecrm.ru. */
  const subdomainSigned = () =>
    dkimSigned(
      buildMessage({
        from: 'Иван <ivan@flamecrm.ru>',
        to: 'support+TKT-2001@flamecrm.ru',
        subject: 'Re: [TKT-2001] Картридж',
        messageId: `<sub-${++n}-${Date.now()}@flamecrm.ru>`,
        body: 'Пишет кто угодно с ключом mail.flamecrm.ru.',
      }),
      'mail.flamecrm.ru',
      's1',
      subdomainKey,
    );

  it('refuses d=mail.flamecrm.ru for @flamecrm.ru staff, though DMARC (adkim=r) passes', async () => {
    const message = await subdomainSigned();
    const reply = await send(enforce, message, 'TKT-2001');
    expect(reply.short).toBe('550 5.7.22');
    expect(reply.text).toBe(
      "Staff mail not authenticated: d=mail.flamecrm.ru is not flamecrm.ru; sign as d=flamecrm.ru or send through flamecrm.ru's own servers",
    );
    expect(await stored(message)).toEqual([]);
    const line = enforce.logs.filter((l) => l.messageId === messageIdOf(message)).at(-1);
    expect(line).toMatchObject({ code: 'DATA_AUTH_REJECTED', auth: 'AUTH_STAFF_SUBDOMAIN', role: 'staff' });
    expect(String(line!.reason)).toContain('DKIM passes for d=mail.flamecrm.ru, not for flamecrm.ru itself');
    expect(String(line!.reason)).toContain('STAFF_DKIM_DOMAINS');
  });

  it('takes it when STAFF_DKIM_DOMAINS lists the subdomain', async () => {
    const message = await subdomainSigned();
    expect((await send(listed, message, 'TKT-2001')).short).toBe('250 2.0.0');
    const [row] = await stored(message);
    expect(row).toMatchObject({ ticket_id: 'TKT-2001' });
    expect(row.decision).toMatchObject({
      verdict: 'accept',
      wouldReject: false,
      role: 'staff',
      authenticatedBy: 'dmarc',
    });
  });
});
