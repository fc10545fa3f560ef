// The conversation both ways, with real parts only: `ticket create` (the CLI, another process)
// queues the staff notification, ticket-mx's sender delivers it to a real SMTP relay started here,
// staff answer it over SMTP, the requester is notified, answers (threaded), the answer lands and
// staff are notified. The bytes are read like the recipient's server would: mailparser, and DKIM
// verified by mailauth against the loopback DNS. Then bounces: a DSN to the VERP address marks the
// row bounced; a forged VERP address is refused.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bounceAddress, macFor } from '../../src/mail/address.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { loadZones, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { dkimKeyFile, dkimResults, outboxRows, readMail, waitForStatus } from '../helpers/outbox.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { SMTP_ZONES, startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver, SmtpClient } from '../helpers/smtp-client.js';

const SECRET = 'conversation-secret-0123456789abcdef';
const STAFF = 'info@flamecrm.ru';
const REQUESTER = 'client@example.ru';

let db: TestDatabase;
let dns: TestDnsServer;
let relay: TestRelay;
let server: TestServer;
let key: { file: string; dir: string };

const env = () => ({
  MAIL_DOMAINS: 'flamecrm.ru,support.flamecrm.ru',
  NOTIFY_STAFF_TO: STAFF,
  REPLY_ADDRESS_SECRET: SECRET,
  OUTBOUND_SMTP_URL: relay.url,
  DKIM_PRIVATE_KEY_FILE: key.file,
  DKIM_SELECTOR: 'notify',
});

beforeAll(async () => {
  db = await createTestDatabase();
  dns = await startDnsServer(loadZones(SMTP_ZONES));
  key = dkimKeyFile(dns, 'flamecrm.ru', 'notify');
  relay = await startRelay();
  server = await startTestServer(
    db.url,
    { ...env(), AUTH_POLICY: 'enforce', STAFF_SENDERS: '@flamecrm.ru', TICKET_MAX_MESSAGES_PER_HOUR: '0' },
    dns,
  );
});

afterAll(async () => {
  await server?.close();
  await relay?.close();
  await dns?.close();
  await db?.drop();
  if (key) fs.rmSync(key.dir, { recursive: true, force: true });
});

/** A second terminal: the same database and settings as the server. */
const cli = () => cleanEnv({ DATABASE_URL: db.url, ...env() });
const ticketAddress = (id: string) => `support+${id}.${macFor(id, SECRET)}@flamecrm.ru`;

describe('one conversation, end to end', () => {
  let ticketId: string;
  const seen: Awaited<ReturnType<typeof readMail>>[] = [];

  it('ticket create (another process) → the staff notification in the seed format, signed and threaded', async () => {
    const created = await runCli(
      [
        'ticket',
        'create',
        '--subject',
        'Тема тикета',
        '--requester',
        REQUESTER,
        '--message',
        'Текст сообщения...',
        '--json',
      ],
      cli(),
    );
    expect(created.code, created.stderr).toBe(0);
    const out = JSON.parse(created.stdout);
    ticketId = out.ticket.id;
    expect(out.replyAddress).toBe(ticketAddress(ticketId));
    expect(out.outbox).toHaveLength(1);

    const [relayed] = await relay.waitFor(1);
    const outboxId = out.outbox[0];
    expect(relayed!.to).toEqual([STAFF]);
    // the envelope sender is the signed VERP address of this very row
    expect(relayed!.from).toBe(bounceAddress(outboxId, await verpSecret(), 'flamecrm.ru'));

    const mail = await readMail(relayed!.raw);
    seen.push(mail);
    expect(mail.subject).toBe(`[${ticketId}] Тема тикета`);
    expect(mail.header('x-ticket-id')).toBe(ticketId);
    expect(mail.replyTo).toBe(ticketAddress(ticketId));
    expect(mail.from).toBe('support@flamecrm.ru');
    expect(mail.to).toBe(STAFF);
    expect(mail.header('auto-submitted')).toBe('auto-generated');
    expect(mail.header('x-auto-response-suppress')).toBe('All');
    expect(mail.messageId).toMatch(new RegExp(`^<notify-${ticketId}-[0-9a-f]{24}@flamecrm\\.ru>$`));
    expect(mail.inReplyTo).toBeNull();
    expect(mail.text).toBe(
      [
        `Новый тикет поддержки ${ticketId}`,
        '',
        `От: ${REQUESTER}`,
        'Тема: Тема тикета',
        '',
        'Сообщение:',
        'Текст сообщения...',
        '',
        '---',
        'Ответьте на это письмо, чтобы добавить ответ в тикет.',
        `Ticket ID: ${ticketId}`,
        '',
      ].join('\n'),
    );
    expect(mail.html).toContain(`Новый тикет поддержки <b>${ticketId}</b>`);
    expect(mail.html).toContain('Текст сообщения...');
    expect(await dkimResults(relayed!.raw, dns)).toEqual([
      { result: 'pass', domain: 'flamecrm.ru', selector: 'notify' },
    ]);

    // the Message-ID is recorded for threading, with its outbox row, and the row is sent
    const { rows } = await db.pool.query(
      'select ticket_id, outbox_id from notification_messages where message_id = $1',
      [mail.messageId],
    );
    expect(rows).toEqual([{ ticket_id: ticketId, outbox_id: outboxId }]);
    const row = await waitForStatus(db.pool, outboxId, 'sent');
    expect(row.last_reply).toMatch(/^250 2\.0\.0 Ok: queued as 1/);
    expect(server.logsWithCode('OUTBOX_SENT').some((l) => l.id === outboxId)).toBe(true);
  });

  it('a staff reply to it (SMTP) → the requester gets the reply text, from support@, Reply-To the ticket', async () => {
    const notification = seen[0]!;
    const r = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'ivan@flamecrm.ru',
      to: [notification.replyTo],
      message: buildMessage({
        from: 'Иван Петров <ivan@flamecrm.ru>',
        to: notification.replyTo,
        subject: `Re: ${notification.subject}`,
        messageId: '<staff-1@mail.flamecrm.ru>',
        headers: [`In-Reply-To: ${notification.messageId}`, `References: ${notification.messageId}`],
        body: `Заменили картридж, всё печатает.\n\n> Новый тикет поддержки ${ticketId}\n> Текст сообщения...`,
      }),
    });
    expect(r.short, r.text).toBe('250 2.0.0');

    const relayed = (await relay.waitFor(2))[1]!;
    expect(relayed.to).toEqual([REQUESTER]);
    const mail = await readMail(relayed.raw);
    seen.push(mail);
    expect(mail.from).toBe('support@flamecrm.ru');
    expect(mail.replyTo).toBe(ticketAddress(ticketId));
    expect(mail.subject).toBe(`Re: [${ticketId}] Тема тикета`);
    expect(mail.text).toContain('Заменили картридж, всё печатает.');
    expect(mail.text).not.toContain('> Текст сообщения'); // the reply text, not the quoted history
    expect(mail.text).not.toContain('Новый тикет поддержки');
    // the requester has written no mail yet (the first message was typed in): nothing to thread into
    expect(mail.inReplyTo).toBeNull();
    expect(await dkimResults(relayed.raw, dns)).toMatchObject([{ result: 'pass', domain: 'flamecrm.ru' }]);
  });

  it('the requester answers it (SMTP, threaded) → it lands in the ticket → staff are notified, threaded', async () => {
    const notification = seen[1]!;
    const r = await deliver(server.port, {
      ip: '127.0.0.2',
      from: REQUESTER,
      to: [notification.replyTo],
      message: buildMessage({
        from: `Клиент <${REQUESTER}>`,
        to: notification.replyTo,
        subject: `Re: ${notification.subject}`,
        messageId: '<answer-1@mail.example.ru>',
        headers: [`In-Reply-To: ${notification.messageId}`, `References: ${notification.messageId}`],
        body: 'Спасибо, работает!\n\n> Заменили картридж, всё печатает.',
      }),
    });
    expect(r.short, r.text).toBe('250 2.0.0');
    const shown = JSON.parse((await runCli(['ticket', 'show', ticketId, '--json'], cli())).stdout);
    expect(shown.messages.map((m: { from: string; text: string; role: string }) => [m.from, m.role, m.text])).toEqual([
      [REQUESTER, 'requester', 'Текст сообщения...'],
      ['ivan@flamecrm.ru', 'staff', 'Заменили картридж, всё печатает.'],
      [REQUESTER, 'requester', 'Спасибо, работает!'],
    ]);

    const relayed = (await relay.waitFor(3))[2]!;
    expect(relayed.to).toEqual([STAFF]);
    const mail = await readMail(relayed.raw);
    seen.push(mail);
    expect(mail.subject).toBe(`Re: [${ticketId}] Тема тикета`);
    expect(mail.text).toContain(`Новый ответ в тикете ${ticketId}`);
    expect(mail.text).toContain(`От: ${REQUESTER}`);
    expect(mail.text).toContain('Спасибо, работает!');
    expect(mail.text).not.toContain('> Заменили картридж');
    // threaded into what staff have seen of this ticket: the "ticket created" notification
    expect(mail.inReplyTo).toBe(seen[0]!.messageId);
    expect(mail.references).toEqual([seen[0]!.messageId]);
    expect(mail.replyTo).toBe(ticketAddress(ticketId));
  });

  it("a second staff reply → the requester's notification is threaded into the requester's own mail", async () => {
    const r = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'ivan@flamecrm.ru',
      to: [seen[2]!.replyTo],
      message: buildMessage({
        from: 'ivan@flamecrm.ru',
        to: seen[2]!.replyTo,
        subject: `Re: ${seen[2]!.subject}`,
        messageId: '<staff-2@mail.flamecrm.ru>',
        headers: [`In-Reply-To: ${seen[2]!.messageId}`],
        body: 'Рады помочь! Закрываем тикет.',
      }),
    });
    expect(r.short).toBe('250 2.0.0');
    const mail = await readMail((await relay.waitFor(4))[3]!.raw);
    seen.push(mail);
    expect(mail.to).toBe(REQUESTER);
    expect(mail.inReplyTo).toBe('<answer-1@mail.example.ru>');
    expect(mail.references).toEqual([seen[1]!.messageId, '<answer-1@mail.example.ru>']);
  });

  it('the author is never notified of their own message: one notification per message, to the other side', async () => {
    const rows = await outboxRows(db.pool, ticketId);
    expect(rows.map((r) => [r.event, r.recipient, r.status])).toEqual([
      ['ticket_created', STAFF, 'sent'],
      ['staff_reply', REQUESTER, 'sent'],
      ['requester_reply', STAFF, 'sent'],
      ['staff_reply', REQUESTER, 'sent'],
    ]);
    expect(relay.messages).toHaveLength(4);
  });

  it('an answer to the bare support@ address finds the ticket through the Message-ID of our notification', async () => {
    const r = await deliver(server.port, {
      ip: '127.0.0.2',
      from: REQUESTER,
      to: ['support@flamecrm.ru'],
      message: buildMessage({
        from: REQUESTER,
        to: 'support@flamecrm.ru',
        subject: 'Re: спасибо',
        messageId: '<answer-2@mail.example.ru>',
        headers: [`In-Reply-To: ${seen[3]!.messageId}`],
        body: 'И ещё один вопрос.',
      }),
    });
    expect(r.short, r.text).toBe('250 2.0.0');
    const { rows } = await db.pool.query(
      "select ticket_id from ticket_messages where message_id = '<answer-2@mail.example.ru>'",
    );
    expect(rows).toEqual([{ ticket_id: ticketId }]);
    await relay.waitFor(5);
    expect((await readMail(relay.messages[4]!.raw)).inReplyTo).toBe(seen[2]!.messageId);
  });

  it('our own notification coming back is recognised as ours: no ticket message, no new notification', async () => {
    const before = await outboxRows(db.pool);
    const r = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'bounces@flamecrm.ru',
      to: [ticketAddress(ticketId)],
      message: relay.messages[1]!.raw,
    });
    expect(r.short).toBe('250 2.0.0');
    expect(r.text).toMatch(/own-notification recorded as \d+/);
    expect(await outboxRows(db.pool)).toHaveLength(before.length);
  });

  it('ticket show lists the notifications of the ticket with their status', async () => {
    const shown = await runCli(['ticket', 'show', ticketId], cli());
    expect(shown.stdout).toMatch(/5 notifications/);
    expect(shown.stdout).toMatch(
      new RegExp(`notification \\d+ to ${STAFF} \\(ticket created\\) sent \\S+: 250 2\\.0\\.0`),
    );
    const json = JSON.parse((await runCli(['ticket', 'show', ticketId, '--json'], cli())).stdout);
    expect(json.notifications[0]).toMatchObject({ to: STAFF, event: 'ticket_created', status: 'sent', attempts: 1 });
    expect(json.notifications[0].messageId).toBe(seen[0]!.messageId);
  });

  it('what the author attached goes along with the notification', async () => {
    const pdf = Buffer.from('%PDF-1.4 a small invoice\n');
    const message = [
      `From: ${REQUESTER}`,
      `To: ${ticketAddress(ticketId)}`,
      `Subject: Re: [${ticketId}] Тема тикета`,
      'Message-ID: <answer-3@mail.example.ru>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="B"',
      '',
      '--B',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Счёт во вложении.',
      '--B',
      'Content-Type: application/pdf; name="invoice.pdf"',
      'Content-Disposition: attachment; filename="invoice.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      pdf.toString('base64'),
      '--B',
      'Content-Type: application/octet-stream; name="invoice.pdf.exe"',
      'Content-Disposition: attachment; filename="invoice.pdf.exe"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('MZ\x90\x00 not really a program').toString('base64'),
      '--B--',
      '',
    ].join('\r\n');
    const r = await deliver(server.port, { ip: '127.0.0.2', from: REQUESTER, to: [ticketAddress(ticketId)], message });
    expect(r.short, r.text).toBe('250 2.0.0');
    const relayed = (await relay.waitFor(6))[5]!;
    const parsed = await simpleParser(relayed.raw);
    expect(parsed.text).toContain('Счёт во вложении.');
    // a program never goes out under our signature, whoever sent it: named, kept in the ticket
    expect(parsed.attachments.map((a) => [a.filename, a.contentType, a.content.equals(pdf)])).toEqual([
      ['invoice.pdf', 'application/pdf', true],
    ]);
    expect(parsed.text).toMatch(/invoice\.pdf\.exe \(application\/octet-stream\)/);
    expect(parsed.html).toContain('invoice.pdf.exe');
    const { rows } = await db.pool.query(
      "select count(*)::int as n from attachments where filename = 'invoice.pdf.exe'",
    );
    expect(rows[0].n).toBe(1);
    expect(await dkimResults(relayed.raw, dns)).toMatchObject([{ result: 'pass' }]);
  });

  it("an out-of-office known only by its subject notifies nobody; a person's subject about one is a reply", async () => {
    const before = await outboxRows(db.pool, ticketId);
    const send = (subject: string, messageId: string, body: string) =>
      deliver(server.port, {
        ip: '127.0.0.2',
        from: REQUESTER,
        to: [ticketAddress(ticketId)],
        message: buildMessage({ from: REQUESTER, to: ticketAddress(ticketId), subject, messageId, body }),
      });
    const away = await send('Отсутствую в офисе до 10 марта', '<away-2@mail.example.ru>', 'Я в отпуске.');
    expect(away.text).toMatch(/^Ok: auto-reply recorded as \d+, not posted to the ticket$/);
    const person = await send('Автоответ не работает в Outlook', '<answer-4@mail.example.ru>', 'Не уходит автоответ.');
    expect(person.short, person.text).toBe('250 2.0.0');

    const { rows } = await db.pool.query(
      "select message_id from ticket_messages where message_id in ('<away-2@mail.example.ru>', '<answer-4@mail.example.ru>')",
    );
    expect(rows).toEqual([{ message_id: '<answer-4@mail.example.ru>' }]);
    // the person's message is the next mail staff get, and the only new outbox row
    const relayed = (await relay.waitFor(7))[6]!;
    expect((await readMail(relayed.raw)).text).toContain('Не уходит автоответ.');
    expect(await outboxRows(db.pool, ticketId)).toHaveLength(before.length + 1);
  });
});

async function verpSecret(): Promise<string> {
  const { rows } = await db.pool.query("select secret from outbox_keys where name = 'verp'");
  return rows[0].secret;
}

/** A Postfix-style delivery status notification about `recipient`, to our VERP address. */
function dsn(to: string, recipient: string, action: string, status: string, diagnostic: string) {
  return [
    'From: MAILER-DAEMON@relay.test (Mail Delivery System)',
    `To: ${to}`,
    'Subject: Undelivered Mail Returned to Sender',
    'Date: Thu, 26 Nov 2026 10:00:00 +0300',
    `Message-ID: <dsn-${Math.random().toString(36).slice(2)}@relay.test>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="DSN-B"',
    '',
    '--DSN-B',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host relay.test.',
    '',
    `<${recipient}>: host mx.example.ru said: ${diagnostic}`,
    '',
    '--DSN-B',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; relay.test',
    'Arrival-Date: Thu, 26 Nov 2026 09:59:00 +0300',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    `Action: ${action}`,
    `Status: ${status}`,
    'Remote-MTA: dns; mx.example.ru',
    `Diagnostic-Code: smtp; ${diagnostic.slice(0, 40)}`,
    `    ${diagnostic.slice(40)}`,
    '',
    '--DSN-B',
    'Content-Type: text/rfc822-headers',
    '',
    'From: support@flamecrm.ru',
    `To: ${recipient}`,
    '',
    '--DSN-B--',
    '',
  ].join('\r\n');
}

describe('bounces come home, never as backscatter', () => {
  let id: string;
  let verp: string;
  let recipient: string;

  beforeAll(async () => {
    const rows = await outboxRows(db.pool);
    const row = rows.find((r) => r.event === 'staff_reply' && r.status === 'sent')!;
    id = row.id;
    recipient = row.recipient;
    verp = bounceAddress(id, await verpSecret(), 'flamecrm.ru');
  });

  const report = (to: string, action: string) =>
    deliver(server.port, {
      ip: '127.0.0.9',
      from: '',
      to: [to],
      message: dsn(
        to,
        recipient,
        action,
        '5.1.1',
        `550 5.1.1 <${recipient}>: Recipient address rejected: User unknown`,
      ),
    });

  it.each([
    ['a wrong MAC', () => `bounces+${id}.0123456789abcdef@flamecrm.ru`],
    ['the MAC of another row', () => verp.replace(`bounces+${id}.`, `bounces+${Number(id) + 1}.`)],
    ['no MAC', () => `bounces+${id}@flamecrm.ru`],
    ['the bare bounces@', () => 'bounces@flamecrm.ru'],
  ])('a forged VERP address (%s) gets 550 5.1.1 at RCPT', async (_, address) => {
    const client = await SmtpClient.connect(server.port, '127.0.0.1', '127.0.0.9');
    await client.command('EHLO relay.test');
    await client.command('MAIL FROM:<>');
    const r = await client.command(`RCPT TO:<${address()}>`);
    await client.quit();
    expect(r.short).toBe('550 5.1.1');
    expect(server.logsWithCode('RCPT_BAD_BOUNCE').at(-1)?.rcpt).toBe(address());
  });

  it('a report that delivery is only delayed is recorded, and the row stays sent', async () => {
    const r = await report(verp, 'delayed');
    expect(r.short, r.text).toBe('250 2.0.0');
    expect(r.text).toMatch(/delivery report \(delayed\) recorded as \d+/);
    expect((await waitForStatus(db.pool, id, 'sent')).status).toBe('sent');
  });

  it.each([
    [
      'an RFC 3834 vacation notice',
      ['Auto-Submitted: auto-replied', 'Subject: Out of office'],
      'Back on Monday. Urgent: 550 5.1.1 is our room.',
    ],
    [
      'a notice with no header that a person would call a number in',
      ['Subject: Re: your ticket'],
      'I am away. Urgent: call 555 0100.',
    ],
  ])('%s from <> to the VERP address is recorded, and the row stays sent', async (_, headers, body) => {
    const message = [
      `From: Ivan <${recipient}>`,
      `To: ${verp}`,
      ...headers,
      `Message-ID: <away-${crypto.randomUUID()}@example.ru>`,
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
      '',
    ].join('\r\n');
    const r = await deliver(server.port, { ip: '127.0.0.9', from: '', to: [verp], message });
    expect(r.short, r.text).toBe('250 2.0.0');
    expect((await waitForStatus(db.pool, id, 'sent')).status).toBe('sent');
    const { rows } = await db.pool.query('select reason from unrouted_messages where recipient = $1 order by id', [
      verp.toLowerCase(),
    ]);
    expect(rows.at(-1).reason).toMatch(new RegExp(`^(auto-reply|mail) to a bounce address for outbox ${id}$`));
  });

  it('a DSN to the VERP address marks the row bounced with the remote diagnostic; ticket show says so', async () => {
    const r = await report(verp, 'failed');
    expect(r.short, r.text).toBe('250 2.0.0');
    const row = await waitForStatus(db.pool, id, 'bounced');
    expect(row.last_reply).toBe(`550 5.1.1 <${recipient}>: Recipient address rejected: User unknown`);
    expect(server.logsWithCode('OUTBOX_BOUNCED').at(-1)).toMatchObject({ id, to: recipient, reply: row.last_reply });
    const { rows } = await db.pool.query('select reason from unrouted_messages where recipient = $1 order by id', [
      verp.toLowerCase(),
    ]);
    expect(rows.at(-1).reason).toBe(`delivery report (failed) for outbox ${id}: ${row.last_reply}`);
    const { rows: owner } = await db.pool.query('select ticket_id from outbox where id = $1', [id]);
    const shown = await runCli(['ticket', 'show', owner[0].ticket_id], cli());
    expect(shown.stdout).toContain(
      `notification ${id} to ${recipient} (staff reply) bounced: 550 5.1.1 <${recipient}>: Recipient address rejected`,
    );
    // nothing was sent back to anyone
    expect(relay.messages.every((m) => m.from.startsWith('bounces+'))).toBe(true);
  });

  it('the same report again is a duplicate: 250, nothing changes', async () => {
    const before = (await db.pool.query('select count(*)::int as n from unrouted_messages')).rows[0].n;
    const client = await SmtpClient.connect(server.port, '127.0.0.1', '127.0.0.9');
    await client.command('EHLO relay.test');
    await client.command('MAIL FROM:<>');
    await client.command(`RCPT TO:<${verp}>`);
    const first = dsn(verp, recipient, 'failed', '5.1.1', '550 5.1.1 user unknown here and now, really');
    const r1 = await client.data(first);
    await client.command('MAIL FROM:<>');
    await client.command(`RCPT TO:<${verp}>`);
    const r2 = await client.data(first);
    await client.quit();
    expect(r1.short).toBe('250 2.0.0');
    expect(r2.text).toMatch(/already committed/);
    expect((await db.pool.query('select count(*)::int as n from unrouted_messages')).rows[0].n).toBe(before + 1);
  });
});

describe("a third party's reply (AUTH_POLICY=monitor) is told to staff as one, not as the requester's", () => {
  const TOKEN = `tmx_${'c'.repeat(40)}`;
  let monitor: TestServer;
  let ticketId: string;
  let before: number;

  beforeAll(async () => {
    before = relay.messages.length;
    monitor = await startTestServer(
      db.url,
      { ...env(), AUTH_POLICY: 'monitor', STAFF_SENDERS: '@flamecrm.ru', API_TOKEN: TOKEN },
      dns,
    );
    const created = await runCli(
      ['ticket', 'create', '--subject', 'Сканер', '--requester', REQUESTER, '--message', 'Не сканирует.', '--json'],
      cli(),
    );
    expect(created.code, created.stderr).toBe(0);
    ticketId = JSON.parse(created.stdout).ticket.id;
  });
  afterAll(async () => {
    await monitor?.close();
  });

  it('the notification, ticket show (text and --json) and GET /v1/tickets/{id} all say who wrote', async () => {
    const r = await deliver(monitor.port, {
      ip: '127.0.0.3',
      from: 'someone@stranger.org',
      to: [ticketAddress(ticketId)],
      message: buildMessage({
        from: 'Someone <someone@stranger.org>',
        to: ticketAddress(ticketId),
        subject: `Re: [${ticketId}] Сканер`,
        body: 'Я не клиент, но у меня тоже не сканирует.',
      }),
    });
    expect(r.short, r.text).toBe('250 2.0.0');

    // "ticket created", then the third party's reply, both to staff
    await relay.waitFor(before + 2);
    const mails = await Promise.all(relay.messages.slice(before).map((m) => readMail(m.raw)));
    const reply = mails.find((m) => m.header('x-ticket-id') === ticketId && m.text.includes('Я не клиент'))!;
    expect(reply.to).toBe(STAFF);
    expect(reply.text).toContain(`Ответ третьего лица в тикете ${ticketId}`);
    expect(reply.text).toContain(
      `От: someone@stranger.org (не заявитель тикета, ${REQUESTER}, и не подтверждён как сотрудник)`,
    );
    expect(reply.text).not.toContain('Новый ответ в тикете');

    const rows = await outboxRows(db.pool, ticketId);
    expect(rows.map((row) => [row.event, row.recipient])).toEqual([
      ['ticket_created', STAFF],
      ['stranger_reply', STAFF],
    ]);
    const human = (await runCli(['ticket', 'show', ticketId], cli())).stdout;
    expect(human).toMatch(/from Someone <someone@stranger\.org> \(third party: neither the requester nor staff\)/);
    expect(human).toMatch(new RegExp(`notification ${rows[1]!.id} to ${STAFF} \\(reply from a third party\\)`));
    expect(human).not.toContain('requester reply');

    const json = JSON.parse((await runCli(['ticket', 'show', ticketId, '--json'], cli())).stdout);
    const api = await fetch(`http://127.0.0.1:${monitor.httpPort}/v1/tickets/${ticketId}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(api.status).toBe(200);
    for (const doc of [json, await api.json()]) {
      expect(doc.messages.map((m: { from: string; role: string }) => [m.from, m.role])).toEqual([
        [REQUESTER, 'requester'],
        ['someone@stranger.org', 'stranger'],
      ]);
      expect(doc.notifications.map((n: { event: string }) => n.event)).toEqual(['ticket_created', 'stranger_reply']);
    }
  });

  it('so is a staff From that did not authenticate: a third party to staff, never mail to the customer', async () => {
    const sent = relay.messages.length;
    const r = await deliver(monitor.port, {
      ip: '127.0.0.3', // not in flamecrm.ru's SPF, and unsigned
      from: 'petr@flamecrm.ru',
      to: [ticketAddress(ticketId)],
      message: buildMessage({
        from: 'Petr <petr@flamecrm.ru>',
        to: ticketAddress(ticketId),
        subject: `Re: [${ticketId}] Сканер`,
        body: 'Это сотрудник, честно.',
      }),
    });
    expect(r.short, r.text).toBe('250 2.0.0');
    await relay.waitFor(sent + 1);
    const mails = await Promise.all(relay.messages.slice(sent).map((m) => readMail(m.raw)));
    expect(mails.map((m) => m.to)).toEqual([STAFF]);
    expect(mails[0]!.text).toContain(`Ответ третьего лица в тикете ${ticketId}`);
    expect(mails[0]!.text).toContain(
      `От: petr@flamecrm.ru (не заявитель тикета, ${REQUESTER}, и не подтверждён как сотрудник)`,
    );
    const rows = await outboxRows(db.pool, ticketId);
    expect(rows.map((row) => [row.event, row.recipient]).slice(2)).toEqual([['stranger_reply', STAFF]]);
    const human = (await runCli(['ticket', 'show', ticketId], cli())).stdout;
    expect(human).toMatch(/accepted because AUTH_POLICY=monitor/);
    expect(human).not.toContain('requester reply');
  });
});
