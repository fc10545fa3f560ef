// The pure parts of the sending half: who is notified of what, the templates (built-in, overridden,
// checked), reading delivery reports, the backoff, what an SMTP error means, the relay URL.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { Ticket } from '../../src/db/queries.js';
import { findSmtpError, readDeliveryReport } from '../../src/mail/dsn.js';
import { judgeSmtpError, parseRelayUrl, readDkimKey } from '../../src/outbox/mail.js';
import { notificationsFor, notifyRules, ticketCreatedNotifications } from '../../src/outbox/notify.js';
import { retryDelay } from '../../src/outbox/sender.js';
import { loadTemplates, oneLine, renderMail, TemplateError } from '../../src/outbox/templates.js';
import { TEMPLATES_DIR } from '../../src/paths.js';
import { failureOf } from '../../src/smtp/phases/bounce.js';

const ticket: Ticket = {
  id: 'TKT-5',
  subject: 'Printer',
  requester: 'client@example.ru',
  status: 'open',
  createdAt: new Date(),
};
const rules = notifyRules({
  notifyStaffTo: ['info@flamecrm.ru', 'boss@flamecrm.ru'],
  notifyRequester: true,
  mailDomains: ['flamecrm.ru', 'help.flamecrm.ru'],
  crmWebhookUrl: null,
});

describe('the CRM webhook rows', () => {
  const withWebhook = notifyRules({
    notifyStaffTo: ['info@flamecrm.ru'],
    notifyRequester: true,
    mailDomains: ['flamecrm.ru'],
    crmWebhookUrl: 'https://crm.example.ru/hook',
  });
  const messages = [
    { ticketId: 'TKT-5', authorRole: 'staff', authorAddress: 'ivan@flamecrm.ru', trusted: true },
    { ticketId: 'TKT-5', authorRole: 'stranger', authorAddress: 'who@else.org', trusted: false },
  ];

  it('one per new ticket message, whoever wrote it, each with an event id of its own', () => {
    const rows = notificationsFor(messages, [ticket], withWebhook).filter((r) => r.kind === 'webhook');
    expect(rows.map((r) => [r.event, r.ticketId, r.recipient])).toEqual([
      ['ticket_message.created', 'TKT-5', 'https://crm.example.ru/hook'],
      ['ticket_message.created', 'TKT-5', 'https://crm.example.ru/hook'],
    ]);
    const ids = rows.map((r) => (r.payload as { eventId: string }).eventId);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(ids).size).toBe(2);
  });

  it("shows the URL without its query, where a CRM's token may sit", () => {
    const secretive = notifyRules({
      notifyStaffTo: [],
      notifyRequester: false,
      mailDomains: ['flamecrm.ru'],
      crmWebhookUrl: 'https://crm.example.ru/hook?key=s3cr3t',
    });
    expect(notificationsFor(messages.slice(0, 1), [ticket], secretive).map((r) => r.recipient)).toEqual([
      'https://crm.example.ru/hook?…',
    ]);
  });

  it('none without CRM_WEBHOOK_URL, and none for a ticket the message did not go to', () => {
    expect(notificationsFor(messages, [ticket], rules).filter((r) => r.kind === 'webhook')).toEqual([]);
    expect(notificationsFor(messages, [{ ...ticket, id: 'TKT-6' }], withWebhook)).toEqual([]);
  });
});

describe('who is notified', () => {
  const message = (authorRole: string, authorAddress: string, trusted = true) => ({
    ticketId: 'TKT-5',
    authorRole,
    authorAddress,
    trusted,
  });
  const to = (rows: ReturnType<typeof notificationsFor>) => rows.map((r) => [r.event, r.recipient]);

  it.each([
    ['a staff reply → the requester', message('staff', 'ivan@flamecrm.ru'), [['staff_reply', 'client@example.ru']]],
    [
      'a requester reply → every staff address',
      message('requester', 'client@example.ru'),
      [
        ['requester_reply', 'info@flamecrm.ru'],
        ['requester_reply', 'boss@flamecrm.ru'],
      ],
    ],
    [
      'a stranger accepted under monitor → staff, as a third party, never the requester',
      message('stranger', 'who@else.org', false),
      [
        ['stranger_reply', 'info@flamecrm.ru'],
        ['stranger_reply', 'boss@flamecrm.ru'],
      ],
    ],
    [
      'an unauthenticated "staff" From under monitor → staff only, as a third party: no mail from us to the customer',
      message('staff', 'ivan@flamecrm.ru', false),
      [
        ['stranger_reply', 'info@flamecrm.ru'],
        ['stranger_reply', 'boss@flamecrm.ru'],
      ],
    ],
    [
      'staff writing from a NOTIFY_STAFF_TO address → not to themselves',
      message('requester', 'BOSS@flamecrm.ru'),
      [['requester_reply', 'info@flamecrm.ru']],
    ],
    ['the requester being staff too → nobody is mailed their own message', message('staff', 'client@example.ru'), []],
  ])('%s', (_, m, expected) => {
    expect(to(notificationsFor([m], [ticket], rules))).toEqual(expected);
  });

  it('NOTIFY_REQUESTER=false and an empty NOTIFY_STAFF_TO notify nobody', () => {
    const off = { ...rules, staffTo: [], notifyRequester: false };
    expect(notificationsFor([message('staff', 'ivan@flamecrm.ru')], [ticket], off)).toEqual([]);
    expect(notificationsFor([message('requester', 'client@example.ru')], [ticket], off)).toEqual([]);
    expect(ticketCreatedNotifications(ticket, off)).toEqual([]);
  });

  it('each notification has its own random Message-ID at the first mail domain', () => {
    const rows = ticketCreatedNotifications(ticket, rules);
    expect(rows.map((r) => r.recipient)).toEqual(['info@flamecrm.ru', 'boss@flamecrm.ru']);
    const ids = rows.map((r) => (r.payload as { messageId: string }).messageId);
    for (const id of ids) expect(id).toMatch(/^<notify-TKT-5-[0-9a-f]{24}@flamecrm\.ru>$/);
    expect(new Set(ids).size).toBe(2);
    expect(rows[0]).toMatchObject({ kind: 'mail', event: 'ticket_created', ticketId: 'TKT-5' });
  });
});

describe('templates', () => {
  const values = {
    ticketId: 'TKT-12345',
    ticketSubject: 'Тема тикета',
    requester: 'sale1@barier-yug.ru',
    replyAddress: 'support+TKT-12345@flamecrm.ru',
    from: 'sale1@barier-yug.ru',
    author: 'sale1@barier-yug.ru',
    subject: 'Тема тикета',
    text: 'Текст сообщения...',
  };

  it('ru "ticket created" is exactly the seed format', () => {
    const t = loadTemplates({ builtIn: TEMPLATES_DIR, override: null, language: 'ru' });
    const mail = renderMail(t.ticket_created, values);
    expect(mail.subject).toBe('[TKT-12345] Тема тикета');
    expect(mail.text).toBe(
      'Новый тикет поддержки TKT-12345\n\nОт: sale1@barier-yug.ru\nТема: Тема тикета\n\nСообщение:\n' +
        'Текст сообщения...\n\n---\nОтветьте на это письмо, чтобы добавить ответ в тикет.\nTicket ID: TKT-12345\n',
    );
    expect(mail.fromName).toBe('Служба поддержки');
  });

  it('en exists for every event; HTML values are escaped, subjects are one line', () => {
    const t = loadTemplates({ builtIn: TEMPLATES_DIR, override: null, language: 'en' });
    const mail = renderMail(t.staff_reply, {
      ...values,
      ticketSubject: 'Line\r\nBcc: evil@x.org',
      text: '<script>alert(1)</script> & "quotes"',
    });
    expect(mail.subject).toBe('Re: [TKT-12345] Line Bcc: evil@x.org');
    expect(mail.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;');
    expect(mail.html).not.toContain('<script>');
    expect(mail.text).toContain('<script>alert(1)</script>');
    expect(renderMail(t.ticket_created, values).text).toMatch(/^New support ticket TKT-12345/);
  });

  it('every value but the text is one line: in headers, in the lines of the text and of the HTML', () => {
    expect(oneLine(' a\r\n\tb\u0000c\u0085d\u2028e\u000b\u000c f\u007f  ')).toBe('a b c d e f');
    const t = loadTemplates({ builtIn: TEMPLATES_DIR, override: null, language: 'ru' });
    const mail = renderMail(t.requester_reply, {
      ...values,
      ticketSubject: 'Принтер\nBcc: crm@evil.example',
      from: 'client@example.ru\r\nX-Injected: 1',
      subject: 'Hi\r\nBcc: x@evil.example',
      text: 'Первая строка\nвторая строка',
    });
    expect(mail.subject).toBe('Re: [TKT-12345] Принтер Bcc: crm@evil.example');
    const lines = mail.text.split('\n');
    expect(lines).toContain('От: client@example.ru X-Injected: 1');
    expect(lines).toContain('Тема: Hi Bcc: x@evil.example');
    expect(lines.filter((l) => /^(bcc|x-injected):/i.test(l))).toEqual([]);
    // the text itself keeps its lines
    expect(lines).toEqual(expect.arrayContaining(['Первая строка', 'вторая строка']));
    expect(mail.html).toContain('Тема: Hi Bcc: x@evil.example</p>');
  });

  it('TEMPLATES_DIR overrides file by file; a template it lacks comes from templates/', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-templates-'));
    try {
      fs.mkdirSync(path.join(dir, 'ru'));
      fs.writeFileSync(
        path.join(dir, 'ru', 'ticket-created.txt'),
        'Subject: Заявка {{ticketId}}\n\nПривет: {{text}}\n',
      );
      const t = loadTemplates({ builtIn: TEMPLATES_DIR, override: dir, language: 'ru' });
      expect(renderMail(t.ticket_created, values)).toMatchObject({
        subject: 'Заявка TKT-12345',
        fromName: null,
        text: 'Привет: Текст сообщения...\n',
      });
      expect(renderMail(t.staff_reply, values).text).toContain('Номер обращения: TKT-12345');

      fs.writeFileSync(path.join(dir, 'ru', 'staff-reply.html'), '<p>{{ticketNumber}}</p>');
      expect(() => loadTemplates({ builtIn: TEMPLATES_DIR, override: dir, language: 'ru' })).toThrow(
        /staff-reply\.html: unknown placeholder \{\{ticketNumber\}\}/,
      );
      fs.writeFileSync(path.join(dir, 'ru', 'staff-reply.html'), '<p>ok</p>');
      fs.writeFileSync(path.join(dir, 'ru', 'staff-reply.txt'), 'no headers here\n\nbody');
      expect(() => loadTemplates({ builtIn: TEMPLATES_DIR, override: dir, language: 'ru' })).toThrow(TemplateError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const postfixDsn = (action: string) =>
  Buffer.from(
    [
      'From: MAILER-DAEMON@relay.test',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      'Action: this line is the human part and does not count',
      '--b',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; relay.test',
      '',
      'Final-Recipient: rfc822; gone@example.ru',
      `Action: ${action}`,
      'Status: 5.1.1',
      'Remote-MTA: dns; mx.example.ru',
      'Diagnostic-Code: smtp; 550 5.1.1 <gone@example.ru>:',
      '    Recipient address rejected: User unknown',
      '',
      '--b--',
      '',
    ].join('\r\n'),
  );

describe('delivery reports', () => {
  it('reads the per-recipient fields of message/delivery-status, unfolded', () => {
    expect(readDeliveryReport(postfixDsn('failed'))).toEqual({
      action: 'failed',
      status: '5.1.1',
      diagnostic: '550 5.1.1 <gone@example.ru>: Recipient address rejected: User unknown',
      finalRecipient: 'gone@example.ru',
      remoteMta: 'mx.example.ru',
    });
  });

  it('decodes a base64 status part (some gateways send one)', () => {
    const body = 'Final-Recipient: rfc822; x@y.ru\r\nAction: failed\r\nStatus: 5.2.2\r\n';
    const raw = Buffer.from(
      [
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        '',
        '--b',
        'Content-Type: message/delivery-status',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from(`Reporting-MTA: dns; gw\r\n\r\n${body}`).toString('base64'),
        '--b--',
      ].join('\r\n'),
    );
    expect(readDeliveryReport(raw)).toMatchObject({ action: 'failed', status: '5.2.2', finalRecipient: 'x@y.ru' });
  });

  it('what marks a row bounced: Action failed; not delayed; a non-RFC 3464 bounce only from the null sender', () => {
    expect(failureOf(readDeliveryReport(postfixDsn('failed')), '', true)).toMatch(/^550 5\.1\.1 <gone@example\.ru>/);
    expect(failureOf(readDeliveryReport(postfixDsn('delayed')), '', true)).toBeNull();
    expect(readDeliveryReport(Buffer.from('Subject: hi\r\n\r\nhello'))).toBeNull();
    const qmail = 'Hi. This is the qmail-send program.\n<gone@example.ru>:\n550 5.1.1 mailbox unavailable\n';
    expect(failureOf(null, qmail, true)).toBe('550 5.1.1 mailbox unavailable');
    expect(failureOf(null, qmail, false)).toBeNull(); // an out-of-office to the bounce address is no bounce
    expect(failureOf(null, 'Delayed: 451 4.7.1 try later', true)).toBeNull();
    expect(findSmtpError('nothing here')).toBeNull();
    // an auto-reply to the bounce address is no bounce, whatever numbers it carries
    expect(failureOf(null, qmail, true, 'Auto-Submitted: auto-replied (RFC 3834)')).toBeNull();
  });

  it.each([
    [
      'qmail',
      'Hi. This is the qmail-send program.\n<gone@example.ru>:\nRemote host said: 550 5.1.1 <gone@example.ru>... User unknown\n',
      '5.1.1',
      '550 5.1.1 <gone@example.ru>... User unknown',
    ],
    [
      'Exim, indented',
      'SMTP error from remote mail server after RCPT TO:<gone@example.ru>:\n    550 5.1.1 <gone@example.ru>: Recipient address rejected\n',
      '5.1.1',
      '550 5.1.1 <gone@example.ru>: Recipient address rejected',
    ],
    [
      'a code alone after "said:"',
      'host mx.example.ru[192.0.2.1] said: 550 Requested action not taken: mailbox unavailable\n',
      '5.0.0',
      '550 Requested action not taken: mailbox unavailable',
    ],
    [
      'a code alone at the start of a line',
      'Delivery failed:\n554 Message refused as spam\n',
      '5.0.0',
      '554 Message refused as spam',
    ],
    ['a 4xx one', 'Remote host said: 452 4.2.2 Mailbox full\n', '4.2.2', '452 4.2.2 Mailbox full'],
  ])('finds the SMTP error of a bounce that is not RFC 3464 (%s)', (_, text, status, diagnostic) => {
    expect(findSmtpError(text)).toEqual({ status, diagnostic });
  });

  it.each([
    ['a phone number', 'I am out of the office. Urgent: call 555 0100.'],
    ['a phone number at the start of a line', 'Call me:\n555 0100 or 555 0199'],
    ['a room and a price', 'Meet in room 450 at 10; the fee is 500 rub.'],
    ['a code with an enhanced status of another class', 'Order 550 4.2.2 shipped'],
    ['a code out of range', 'Remote host said: 590 5.1.1 whatever'],
    ['a date-like number', 'Version 4.3.1 released on 5.12.2026'],
  ])("a number in a person's text is no SMTP error (%s)", (_, text) => {
    expect(findSmtpError(text)).toBeNull();
  });
});

describe('the sender', () => {
  it('backs off exponentially from OUTBOX_RETRY_DELAY, ±10%, at most an hour', () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 4].map((n) => retryDelay(n, 60_000, mid))).toEqual([60_000, 120_000, 240_000, 480_000]);
    expect(retryDelay(30, 60_000, mid)).toBe(3_600_000);
    expect(retryDelay(1, 60_000, () => 0)).toBe(54_000);
    expect(retryDelay(1, 60_000, () => 1)).toBe(66_000);
  });

  it.each([
    [{ responseCode: 550, response: '550 5.1.1 unknown user', code: 'EENVELOPE' }, 'failed'],
    [{ responseCode: 554, response: '554 5.7.1 rejected: spam', code: 'EMESSAGE' }, 'failed'],
    [{ responseCode: 451, response: '451 4.7.1 greylisted', code: 'EENVELOPE' }, 'deferred'],
    [{ responseCode: 421, response: '421 4.3.2 shutting down', code: 'EPROTOCOL' }, 'deferred'],
    // ours to fix, never a lost notification: a wrong password, TLS trouble, no connection
    [{ responseCode: 535, response: '535 5.7.8 bad credentials', code: 'EAUTH' }, 'deferred'],
    [{ code: 'ETLS', message: 'self-signed certificate' }, 'deferred'],
    [{ code: 'ESOCKET', message: 'connect ECONNREFUSED 127.0.0.1:1' }, 'deferred'],
  ])('%j → %s, the reply kept', (err, outcome) => {
    const result = judgeSmtpError(Object.assign(new Error((err as { message?: string }).message ?? 'x'), err));
    expect(result.outcome).toBe(outcome);
    expect(result.reply).toContain((err as { response?: string }).response ?? (err as { message: string }).message);
  });

  it("a relay that hangs (nodemailer's ETIMEDOUT) is a timeout, a refusal is not", () => {
    expect(judgeSmtpError(Object.assign(new Error('Greeting never received'), { code: 'ETIMEDOUT' }))).toMatchObject({
      outcome: 'deferred',
      timedOut: true,
    });
    expect(
      judgeSmtpError(
        Object.assign(new Error('x'), { responseCode: 451, response: '451 4.7.1 later', code: 'EENVELOPE' }),
      ),
    ).not.toHaveProperty('timedOut');
  });

  it('reads user and password (percent-encoded) from OUTBOUND_SMTP_URL', () => {
    expect(parseRelayUrl('smtps://mailer%40flamecrm.ru:p%40ss%3Aw%2Frd@smtp.yandex.ru:465')).toEqual({
      host: 'smtp.yandex.ru',
      port: 465,
      secure: true,
      auth: { user: 'mailer@flamecrm.ru', pass: 'p@ss:w/rd' },
    });
    expect(parseRelayUrl('smtp://relay.internal')).toEqual({
      host: 'relay.internal',
      port: undefined,
      secure: false,
      auth: undefined,
    });
  });
});

describe('the DKIM key', () => {
  const withKey = async (pem: string | null) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-dkim-unit-'));
    const file = path.join(dir, 'dkim.pem');
    if (pem !== null) fs.writeFileSync(file, pem);
    try {
      return await readDkimKey(
        loadConfig({
          MAIL_DOMAINS: 'help.flamecrm.ru,flamecrm.ru',
          DKIM_PRIVATE_KEY_FILE: file,
          DKIM_SELECTOR: 'mail',
        }),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const pem = (type: 'rsa' | 'ed25519', modulusLength?: number) =>
    crypto
      .generateKeyPairSync(type as 'rsa', { modulusLength: modulusLength ?? 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();

  it('is read and parsed once at start, for d= the first of MAIL_DOMAINS', async () => {
    const key = await withKey(pem('rsa'));
    expect(key).toMatchObject({ domain: 'help.flamecrm.ru', selector: 'mail' });
    expect(key!.privateKey.asymmetricKeyType).toBe('rsa');
  });

  it.each([
    ['a missing file', null, /DKIM_PRIVATE_KEY_FILE: cannot use .*dkim\.pem/],
    ['not a key', 'hello', /DKIM_PRIVATE_KEY_FILE: cannot use/],
    ['an Ed25519 key (the signer is rsa-sha256)', pem('ed25519'), /must be an RSA key .* it is ed25519/],
    ['a 512-bit RSA key', pem('rsa', 512), /must be an RSA key of at least 1024 bits .* it is rsa of 512 bits/],
  ])('stops the start on %s, naming the variable', async (_, content, message) => {
    await expect(withKey(content)).rejects.toThrow(message);
  });
});
