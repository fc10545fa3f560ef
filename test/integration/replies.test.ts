// What lands in the ticket is exactly the answer: the client fixtures through SMTP, the ticket
// fallbacks of the bare support@ address, attachments, sanitized HTML, auto-replies and bounces
// set aside, the per-ticket loop breaker, and malformed MIME that never breaks the server.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/paths.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { counts, createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { publishDkimKey } from '../helpers/dns-server.js';
import { dkimSigned } from '../helpers/mail-auth.js';
import { malformedMessages } from '../helpers/malformed.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver, SmtpClient } from '../helpers/smtp-client.js';

const FIXTURES = path.join(PROJECT_ROOT, 'fixtures');

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  for (let n = 1001; n <= 1010; n++) await insertTestTicket(db.pool, `TKT-${n}`, 'client@example.ru');
  server = await startTestServer(db.url, { AUTH_POLICY: 'monitor', TICKET_MAX_MESSAGES_PER_HOUR: '0' });
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const send = (
  message: string | Buffer,
  to = ['support+TKT-1001@flamecrm.ru'],
  from = 'ivan@flamecrm.ru',
  port = server.port,
) => deliver(port, { ip: '127.0.0.1', from, to, message });

let seq = 0;
const uniqueId = () => `<r${++seq}.${process.pid}@test>`;

describe('the client fixtures, through SMTP', () => {
  const files = fs
    .readdirSync(path.join(FIXTURES, 'eml'))
    .filter((f) => f.endsWith('.eml'))
    .sort();

  it('has at least 30 fixtures, each with an expected reply', () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
    for (const f of files)
      expect(fs.existsSync(path.join(FIXTURES, 'expected', f.replace(/\.eml$/, '.txt'))), f).toBe(true);
  });

  it('stores exactly the expected reply text for every fixture (100%)', async () => {
    const misses: string[] = [];
    for (const file of files) {
      const bytes = fs.readFileSync(path.join(FIXTURES, 'eml', file));
      const to = /^To: .*?(support\+TKT-\d+@flamecrm\.ru)/im.exec(bytes.toString('latin1'))![1]!;
      const messageId = /^Message-ID: *(<[^>]+>)/im.exec(bytes.toString('latin1'))![1]!;
      const r = await send(bytes, [to], 'sender@example.ru');
      expect(r.short, `${file}: ${r.text}`).toBe('250 2.0.0');
      const { rows } = await db.pool.query(
        'select reply_text, full_text, removed_text from ticket_messages where message_id = $1',
        [messageId],
      );
      expect(rows, file).toHaveLength(1);
      const expected = fs.readFileSync(path.join(FIXTURES, 'expected', file.replace(/\.eml$/, '.txt')), 'utf8').trim();
      if (rows[0].reply_text.trim() !== expected)
        misses.push(`${file}\n--- expected\n${expected}\n--- got\n${rows[0].reply_text}`);
      // nothing of the original is lost: the full text keeps what the reply text dropped
      expect(rows[0].full_text.length).toBeGreaterThanOrEqual(rows[0].reply_text.length);
    }
    console.log(`reply-text accuracy through SMTP: ${files.length - misses.length}/${files.length}`);
    expect(misses).toEqual([]);
  });

  it('keeps the quote as the removed part', async () => {
    const { rows } = await db.pool.query(
      "select removed_text from ticket_messages where message_id = '<CALD3HI0UINxp3ad-WGGMK--mfln33BjMl902sYF8uLzOHiJ@mail.gmail.com>'",
    );
    expect(rows[0].removed_text).toContain('Новый комментарий в заявке TKT-1001');
  });

  it('ticket show prints the reply text by default and the full text with --full', async () => {
    const env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' });
    const plain = await runCli(['ticket', 'show', 'TKT-1001'], env);
    const full = await runCli(['ticket', 'show', 'TKT-1001', '--full'], env);
    expect(plain.code).toBe(0);
    expect(plain.stdout).not.toContain('Новый комментарий в заявке TKT-1001');
    expect(full.stdout).toContain('Новый комментарий в заявке TKT-1001');
  });

  it('ticket show prints no terminal escape sequences a sender put in a message', async () => {
    await send(
      buildMessage({
        to: 'support+TKT-1010@flamecrm.ru',
        subject: 'Re: \u001b]0;pwned\u0007\u001b[2J',
        body: 'text \u001b[31mred\u001b[0m',
        messageId: uniqueId(),
      }),
      ['support+TKT-1010@flamecrm.ru'],
    );
    const shown = await runCli(
      ['ticket', 'show', 'TKT-1010'],
      cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' }),
    );
    expect(shown.stdout).toContain('text [31mred[0m');
    expect(shown.stdout).not.toMatch(/[\u001b\u0007]/);
  });
});

describe('mail to the bare support@ address', () => {
  beforeAll(async () => {
    await db.pool.query(
      "insert into notification_messages (message_id, ticket_id) values ('<notify-TKT-1005-1@flamecrm.ru>', 'TKT-1005')",
    );
  });

  it.each([
    ['[TKT-…] in the subject', { subject: 'Re: [tkt-1004] VPN' }, 'TKT-1004', 'subject'],
    [
      'In-Reply-To of our notification',
      { subject: 'Re: VPN', headers: ['In-Reply-To: <notify-TKT-1005-1@flamecrm.ru>'] },
      'TKT-1005',
      'in-reply-to',
    ],
    [
      'References of our notification',
      { subject: 'Re: VPN', headers: ['References: <other@x> <notify-TKT-1005-1@flamecrm.ru>'] },
      'TKT-1005',
      'in-reply-to',
    ],
  ])('finds the ticket by %s', async (_name, opts, ticket, via) => {
    const messageId = uniqueId();
    const r = await send(buildMessage({ to: 'support@flamecrm.ru', ...opts, messageId }), ['support@flamecrm.ru']);
    expect(r.short).toBe('250 2.0.0');
    const { rows } = await db.pool.query('select ticket_id from ticket_messages where message_id = $1', [messageId]);
    expect(rows).toEqual([{ ticket_id: ticket }]);
    expect(server.logs.filter((l) => l.messageId === messageId).at(-1)).toMatchObject({ via, tickets: [ticket] });
  });

  // issue 9, defect 3: X-Ticket-ID counts only when the author's own DKIM signature covers it
  it('finds the ticket by an X-Ticket-ID that the author signed', async () => {
    const key = publishDkimKey(server.dns, 'flamecrm.ru', 'mail');
    const messageId = uniqueId();
    const message = buildMessage({
      to: 'support@flamecrm.ru',
      subject: 'Re: VPN',
      headers: ['X-Ticket-ID: TKT-1003'],
      messageId,
    });
    const signed = await dkimSigned(message, 'flamecrm.ru', 'mail', key, {
      headerList: 'From:To:Subject:Date:Message-ID:X-Ticket-ID',
    });
    expect((await send(signed, ['support@flamecrm.ru'])).short).toBe('250 2.0.0');
    const { rows } = await db.pool.query('select ticket_id from ticket_messages where message_id = $1', [messageId]);
    expect(rows).toEqual([{ ticket_id: 'TKT-1003' }]);
    expect(server.logs.filter((l) => l.messageId === messageId).at(-1)).toMatchObject({
      via: 'x-ticket-id',
      tickets: ['TKT-1003'],
    });
  });

  it.each([
    ['unsigned', null],
    ['signed by the author, but not that field', 'From:To:Subject:Date:Message-ID'],
  ])('does not route by an X-Ticket-ID that is %s (anyone can type one): 550 5.1.1', async (_name, headerList) => {
    const key = publishDkimKey(server.dns, 'flamecrm.ru', 'mail');
    const messageId = uniqueId();
    const message = buildMessage({
      to: 'support@flamecrm.ru',
      subject: 'Re: VPN',
      headers: ['X-Ticket-ID: TKT-1003'],
      messageId,
    });
    const bytes = headerList ? await dkimSigned(message, 'flamecrm.ru', 'mail', key, { headerList }) : message;
    expect((await send(bytes, ['support@flamecrm.ru'])).short).toBe('550 5.1.1');
    const { rows } = await db.pool.query('select 1 from ticket_messages where message_id = $1', [messageId]);
    expect(rows).toEqual([]);
  });

  it('refuses with 550 5.1.1 when nothing names a ticket, and stores nothing', async () => {
    const before = await counts(db.pool);
    const r = await send(
      buildMessage({
        to: 'support@flamecrm.ru',
        subject: 'Hello',
        messageId: uniqueId(),
        headers: ['In-Reply-To: <unknown@x>'],
      }),
      ['support@flamecrm.ru'],
    );
    expect(r.short).toBe('550 5.1.1');
    expect(await counts(db.pool)).toEqual(before);
  });

  it('refuses mail to support@ on two of our domains when neither finds a ticket', async () => {
    const r = await send(buildMessage({ to: 'support@flamecrm.ru', subject: 'Hello', messageId: uniqueId() }), [
      'support@flamecrm.ru',
      'support@support.flamecrm.ru',
    ]);
    expect(r.short).toBe('550 5.1.1');
  });

  it('ignores guessable references when reply addresses are signed', async () => {
    const signed = await startTestServer(
      db.url,
      { REPLY_ADDRESS_SECRET: 'a-secret-of-32-characters-000000' },
      server.dns,
    );
    try {
      const bySubject = await send(
        buildMessage({ to: 'support@flamecrm.ru', subject: 'Re: [TKT-1004] VPN', messageId: uniqueId() }),
        ['support@flamecrm.ru'],
        'ivan@flamecrm.ru',
        signed.port,
      );
      expect(bySubject.short).toBe('550 5.1.1');
      const byNotification = await send(
        buildMessage({
          to: 'support@flamecrm.ru',
          subject: 'Re: VPN',
          messageId: uniqueId(),
          headers: ['In-Reply-To: <notify-TKT-1005-1@flamecrm.ru>'],
        }),
        ['support@flamecrm.ru'],
        'ivan@flamecrm.ru',
        signed.port,
      );
      expect(byNotification.short).toBe('250 2.0.0');
    } finally {
      await signed.close();
    }
  });
});

function multipart(parts: string[], boundary = 'b0undary'): string {
  return [
    'From: Ivan <ivan@flamecrm.ru>',
    'To: support+TKT-1006@flamecrm.ru',
    'Subject: Re: [TKT-1006] screenshots',
    `Message-ID: ${uniqueId()}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/related; boundary="${boundary}"`,
    '',
    ...parts.map((p) => `--${boundary}\r\n${p}`),
    `--${boundary}--`,
    '',
  ].join('\r\n');
}

const pdf = Buffer.from('%PDF-1.4 test report').toString('base64');
const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex').toString('base64');

describe('attachments and HTML', () => {
  it('stores attachments with decoded names, type, size, SHA-256, Content-ID and inline flag; cid: links stay', async () => {
    const message = multipart([
      'Content-Type: text/html; charset=utf-8\r\n\r\n<p>See <b>the</b> screenshot <img src="cid:shot1@flamecrm.ru"></p><script>alert(1)</script><a href="javascript:alert(2)" onclick="x()">link</a>',
      `Content-Type: image/png\r\nContent-ID: <shot1@flamecrm.ru>\r\nContent-Disposition: inline; filename="shot.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n${png}`,
      `Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n${pdf}`,
      `Content-Type: text/plain; name="=?UTF-8?B?0LvQvtCzLnR4dA==?="\r\nContent-Disposition: attachment; filename="=?UTF-8?B?0LvQvtCzLnR4dA==?="\r\n\r\nlog line`,
    ]);
    const r = await send(message, ['support+TKT-1006@flamecrm.ru']);
    expect(r.short).toBe('250 2.0.0');
    const rawId = /committed as (\d+)/.exec(r.text)![1];
    const { rows } = await db.pool.query(
      "select filename, content_type, size, encode(sha256, 'hex') as sha256, content_id, inline, bytes from attachments where raw_message_id = $1 order by position",
      [rawId],
    );
    expect(rows.map((a) => [a.filename, a.content_type, a.content_id, a.inline])).toEqual([
      ['shot.png', 'image/png', 'shot1@flamecrm.ru', true],
      ['отчёт.pdf', 'application/pdf', null, false],
      ['лог.txt', 'text/plain', null, false],
    ]);
    expect(rows[1].bytes.toString()).toBe('%PDF-1.4 test report');
    expect(rows[1].size).toBe(rows[1].bytes.length);
    expect(rows[1].sha256).toBe((await import('node:crypto')).createHash('sha256').update(rows[1].bytes).digest('hex'));
    const { rows: tm } = await db.pool.query('select html, reply_text from ticket_messages where raw_message_id = $1', [
      rawId,
    ]);
    expect(tm[0].html).toContain('src="cid:shot1@flamecrm.ru"');
    expect(tm[0].html).toContain('<b>the</b>');
    expect(tm[0].html).not.toMatch(/script|javascript:|onclick/);
    // no text part: the text comes from the HTML
    expect(tm[0].reply_text).toContain('See the screenshot');
    const env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' });
    const shown = JSON.parse((await runCli(['ticket', 'show', 'TKT-1006', '--json'], env)).stdout);
    expect(
      shown.messages.at(-1).attachments.map((a: { filename: string; inline: boolean }) => [a.filename, a.inline]),
    ).toEqual([
      ['shot.png', true],
      ['отчёт.pdf', false],
      ['лог.txt', false],
    ]);
    expect((await runCli(['ticket', 'show', 'TKT-1006'], env)).stdout).toMatch(
      /attachment: отчёт\.pdf \(application\/pdf, 20 bytes\)/,
    );
  });

  it('stores a large message and its attachments byte for byte, with SIZE declared (exact, low, high) or not', async () => {
    // large enough for a worker, for buffers that grow several times and pieces of the parser's
    // input; a dot at the start of lines (unstuffed as they arrive) and a quoted-printable part
    const file = crypto.randomBytes(3 * 1024 * 1024 + 123);
    const notes = `${'.a line that starts with a dot, = and Привет\r\n'.repeat(20_000)}end\r\n`;
    const parts = (id: string) =>
      [
        'From: Ivan <ivan@flamecrm.ru>',
        'To: support+TKT-1008@flamecrm.ru',
        'Subject: Re: [TKT-1008] the logs',
        `Message-ID: ${id}`,
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="big"',
        '',
        '--big',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Both files attached.',
        '--big',
        'Content-Type: application/octet-stream; name="dump.bin"',
        'Content-Transfer-Encoding: base64',
        '',
        file.toString('base64').replace(/.{76}/g, '$&\r\n'),
        '--big',
        'Content-Type: text/plain; charset=utf-8; name="notes.txt"',
        'Content-Disposition: attachment; filename="notes.txt"',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        notes
          .replace(/=/g, '=3D')
          .replace(/[^\x00-\x7f]/g, (c) => [...Buffer.from(c)].map((b) => `=${b.toString(16).toUpperCase()}`).join('')),
        '--big--',
        '',
      ].join('\r\n');
    const length = Buffer.byteLength(parts(uniqueId()));
    for (const size of [null, length, Math.floor(length / 3), length * 2]) {
      const message = parts(uniqueId());
      const client = await SmtpClient.connect(server.port, '127.0.0.1', '127.0.0.1');
      let r: Awaited<ReturnType<SmtpClient['data']>>;
      try {
        await client.command('EHLO mail.example');
        expect((await client.command(`MAIL FROM:<ivan@flamecrm.ru>${size ? ` SIZE=${size}` : ''}`)).code).toBe(250);
        expect((await client.command('RCPT TO:<support+TKT-1008@flamecrm.ru>')).code).toBe(250);
        r = await client.data(message);
      } finally {
        await client.quit();
      }
      expect(r.short, `SIZE=${size}: ${r.text}`).toBe('250 2.0.0');
      const rawId = /committed as (\d+)/.exec(r.text)![1];
      const raw = await db.pool.query('select bytes, sha256 from raw_messages where id = $1', [rawId]);
      expect(Buffer.compare(raw.rows[0].bytes, Buffer.from(message)), `SIZE=${size}`).toBe(0);
      expect(raw.rows[0].sha256).toEqual(crypto.createHash('sha256').update(message).digest());
      const { rows } = await db.pool.query(
        'select filename, size, sha256, bytes from attachments where raw_message_id = $1 order by position',
        [rawId],
      );
      expect(rows.map((a) => [a.filename, a.size])).toEqual([
        ['dump.bin', file.length],
        ['notes.txt', Buffer.byteLength(notes)],
      ]);
      expect(Buffer.compare(rows[0].bytes, file)).toBe(0);
      expect(rows[1].bytes.toString()).toBe(notes);
      for (const a of rows) expect(a.sha256).toEqual(crypto.createHash('sha256').update(a.bytes).digest());
    }
  });

  it.each([
    ['too many attachments', { ATTACHMENT_MAX_COUNT: '2' }],
    ['too many bytes of attachments', { ATTACHMENT_MAX_BYTES: '10' }],
  ])('refuses %s with 552 5.3.4 and stores nothing', async (_name, env) => {
    const limited = await startTestServer(db.url, env, server.dns);
    try {
      const before = await counts(db.pool);
      const message = multipart([
        'Content-Type: text/plain\r\n\r\nthree files',
        ...[1, 2, 3].map(
          (i) =>
            `Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="f${i}.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${pdf}`,
        ),
      ]);
      const r = await send(message, ['support+TKT-1006@flamecrm.ru'], 'ivan@flamecrm.ru', limited.port);
      expect(r.short).toBe('552 5.3.4');
      expect(await counts(db.pool)).toEqual(before);
    } finally {
      await limited.close();
    }
  });
});

describe('auto-replies, bounces and loops', () => {
  it.each([
    ['Auto-Submitted: auto-replied', { headers: ['Auto-Submitted: auto-replied'] }, 'auto-reply'],
    ['Precedence: bulk', { headers: ['Precedence: bulk'] }, 'auto-reply'],
    ['X-Autoreply', { headers: ['X-Autoreply: yes'] }, 'auto-reply'],
    ['an "Автоответ" subject', { subject: 'Автоответ: Re: [TKT-1007] VPN' }, 'auto-reply'],
    ['an "Out of Office" subject', { subject: 'Out of Office: Re: [TKT-1007] VPN' }, 'auto-reply'],
    ['the Exchange loop header', { headers: ['X-MS-Exchange-Inbox-Rules-Loop: ivan@flamecrm.ru'] }, 'loop'],
    ['our own notification coming back', { from: 'FlameCRM <support@flamecrm.ru>' }, 'own-notification'],
  ])('records %s as unrouted, answers 250, never posts to the ticket', async (_name, opts, kind) => {
    const messageId = uniqueId();
    const r = await send(buildMessage({ to: 'support+TKT-1007@flamecrm.ru', messageId, ...opts }), [
      'support+TKT-1007@flamecrm.ru',
    ]);
    expect(r.short).toBe('250 2.0.0');
    expect(r.text).toMatch(new RegExp(`^Ok: ${kind} recorded as \\d+, not posted to the ticket$`));
    const { rows: tm } = await db.pool.query('select 1 from ticket_messages where message_id = $1', [messageId]);
    expect(tm).toHaveLength(0);
    const { rows } = await db.pool.query('select ticket_id, reason from unrouted_messages where message_id = $1', [
      messageId,
    ]);
    expect(rows).toEqual([{ ticket_id: 'TKT-1007', reason: expect.stringMatching(new RegExp(`^${kind}: `)) }]);
  });

  it('records a bounce from the null sender, and a multipart/report delivery report', async () => {
    const bounceId = uniqueId();
    const bounce = await deliver(server.port, {
      ip: '127.0.0.1',
      from: '',
      to: ['support+TKT-1007@flamecrm.ru'],
      message: buildMessage({
        from: 'Mail Delivery Subsystem <mailer-daemon@example.ru>',
        subject: 'Undelivered Mail Returned to Sender',
        messageId: bounceId,
      }),
    });
    expect(bounce.text).toMatch(/^Ok: bounce recorded/);
    const reportId = uniqueId();
    const report = [
      'From: postmaster@example.ru',
      'To: support+TKT-1007@flamecrm.ru',
      'Subject: Delivery Status Notification (Failure)',
      `Message-ID: ${reportId}`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
      '',
      '--r',
      'Content-Type: text/plain',
      '',
      'Delivery failed.',
      '--r',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; mx.example.ru',
      '',
      'Final-Recipient: rfc822; nobody@example.ru',
      'Action: failed',
      'Status: 5.1.1',
      '--r--',
      '',
    ].join('\r\n');
    expect((await send(report, ['support+TKT-1007@flamecrm.ru'], 'postmaster@example.ru')).text).toMatch(
      /^Ok: bounce recorded/,
    );
  });

  it('posts an ordinary Outlook reply that carries X-Auto-Response-Suppress', async () => {
    const messageId = uniqueId();
    const r = await send(
      buildMessage({
        to: 'support+TKT-1007@flamecrm.ru',
        messageId,
        headers: ['X-Auto-Response-Suppress: All', 'Thread-Topic: VPN'],
      }),
      ['support+TKT-1007@flamecrm.ru'],
    );
    expect(r.text).toMatch(/^Ok: committed as/);
  });

  it('breaks loops: past TICKET_MAX_MESSAGES_PER_HOUR a ticket answers 450 4.7.1, a retry of a stored message still 250', async () => {
    await insertTestTicket(db.pool, 'TKT-2000');
    const capped = await startTestServer(db.url, { TICKET_MAX_MESSAGES_PER_HOUR: '3' }, server.dns);
    try {
      const ids = [uniqueId(), uniqueId(), uniqueId(), uniqueId()];
      const replies = [];
      for (const messageId of ids)
        replies.push(
          (
            await send(
              buildMessage({ to: 'support+TKT-2000@flamecrm.ru', messageId, body: `loop ${messageId}` }),
              ['support+TKT-2000@flamecrm.ru'],
              'ivan@flamecrm.ru',
              capped.port,
            )
          ).short,
        );
      expect(replies).toEqual(['250 2.0.0', '250 2.0.0', '250 2.0.0', '450 4.7.1']);
      const retry = await send(
        buildMessage({ to: 'support+TKT-2000@flamecrm.ru', messageId: ids[0], body: `loop ${ids[0]}` }),
        ['support+TKT-2000@flamecrm.ru'],
        'ivan@flamecrm.ru',
        capped.port,
      );
      expect(retry.text).toMatch(/^Ok: already committed as/);
      const { rows } = await db.pool.query(
        "select count(*)::int as n from ticket_messages where ticket_id = 'TKT-2000'",
      );
      expect(rows[0].n).toBe(3);
      expect(capped.logsWithCode('DATA_TICKET_RATE_LIMITED').at(-1)).toMatchObject({ tickets: ['TKT-2000'] });
    } finally {
      await capped.close();
    }
  });
});

describe('the hourly cap counts each author apart (attack run 4, F-med-1)', () => {
  it('past TICKET_MAX_MESSAGES_PER_HOUR the requester gets 450 4.7.1, and a staff answer to the ticket still 250', async () => {
    await insertTestTicket(db.pool, 'TKT-2003', 'client@example.ru');
    const capped = await startTestServer(db.url, { TICKET_MAX_MESSAGES_PER_HOUR: '3' }, server.dns);
    try {
      const to = 'support+TKT-2003@flamecrm.ru';
      const fromRequester = (n: number) =>
        send(
          buildMessage({ from: 'Client <client@example.ru>', to, messageId: uniqueId(), body: `flood ${n}` }),
          [to],
          'client@example.ru',
          capped.port,
        );
      const replies = [];
      for (let n = 0; n < 4; n++) replies.push(await fromRequester(n));
      expect(replies.map((r) => r.short)).toEqual(['250 2.0.0', '250 2.0.0', '250 2.0.0', '450 4.7.1']);
      expect(replies[3]!.text).toBe(
        'Ticket TKT-2003 already received 3 messages from you in the last hour, try again later',
      );
      const answer = await send(
        buildMessage({ to, messageId: uniqueId(), body: 'Staff answer.' }),
        [to],
        'ivan@flamecrm.ru',
        capped.port,
      );
      expect(answer.short).toBe('250 2.0.0');
      expect((await fromRequester(4)).short).toBe('450 4.7.1');
      const { rows } = await db.pool.query(
        `select author_address as author, count(*)::int as n from ticket_messages
          where ticket_id = 'TKT-2003' group by 1 order by 1`,
      );
      expect(rows).toEqual([
        { author: 'client@example.ru', n: 3 },
        { author: 'ivan@flamecrm.ru', n: 1 },
      ]);
    } finally {
      await capped.close();
    }
  });
});

describe('the hourly cap counts an authenticated author apart from mail only claiming to be theirs', () => {
  it("under monitor, forged staff mail cannot use up the real author's hour", async () => {
    await insertTestTicket(db.pool, 'TKT-2004', 'client@example.ru');
    const capped = await startTestServer(
      db.url,
      { AUTH_POLICY: 'monitor', STAFF_SENDERS: '@flamecrm.ru', TICKET_MAX_MESSAGES_PER_HOUR: '3' },
      server.dns,
    );
    try {
      const to = 'support+TKT-2004@flamecrm.ru';
      // From ivan@flamecrm.ru, unsigned, from an address flamecrm.ru's SPF does not list: stored
      // (monitor records what enforce would refuse), its author not authenticated
      const forged = (n: number) =>
        deliver(capped.port, {
          ip: '127.0.0.9',
          from: 'ivan@flamecrm.ru',
          to: [to],
          message: buildMessage({ to, messageId: uniqueId(), body: `forged ${n}` }),
        });
      const replies = [];
      for (let n = 0; n < 4; n++) replies.push(await forged(n));
      expect(replies.map((r) => r.short)).toEqual(['250 2.0.0', '250 2.0.0', '250 2.0.0', '450 4.7.1']);
      // the real ivan@flamecrm.ru (SPF pass, aligned) still gets his answer in
      const real = await send(
        buildMessage({ to, messageId: uniqueId(), body: 'The real answer.' }),
        [to],
        'ivan@flamecrm.ru',
        capped.port,
      );
      expect(real.short).toBe('250 2.0.0');
      const { rows } = await db.pool.query(
        `select auth_verdict = 'AUTH_ACCEPTED' as authenticated, count(*)::int as n from ticket_messages
          where ticket_id = 'TKT-2004' group by 1 order by 1`,
      );
      expect(rows).toEqual([
        { authenticated: false, n: 3 },
        { authenticated: true, n: 1 },
      ]);
    } finally {
      await capped.close();
    }
  });
});

describe('a loop no header marks', () => {
  const ack = (n: number) =>
    `Thank you for contacting Example Support. Your request #${4520 + n} has been received, ` +
    `an engineer will answer within ${n + 1} business days.`;

  it('the third message with the same text (digits aside) from one author to one ticket within an hour is a loop', async () => {
    await insertTestTicket(db.pool, 'TKT-2100', 'client@example.ru');
    await insertTestTicket(db.pool, 'TKT-2101', 'client@example.ru');
    const looped = await startTestServer(
      db.url,
      { AUTH_POLICY: 'monitor', NOTIFY_STAFF_TO: 'staff@flamecrm.ru' },
      server.dns,
    );
    try {
      const to = (t: string) => `support+${t}@flamecrm.ru`;
      const post = (ticket: string, body: string, from = 'client@example.ru', messageId = uniqueId()) =>
        send(buildMessage({ from, to: to(ticket), messageId, body }), [to(ticket)], from, looped.port);
      const answers = [];
      for (let n = 0; n < 4; n++) answers.push(await post('TKT-2100', ack(n)));
      expect(answers.map((r) => r.short)).toEqual(['250 2.0.0', '250 2.0.0', '250 2.0.0', '250 2.0.0']);
      expect(answers[1]!.text).toMatch(/^Ok: committed as/);
      expect(answers[2]!.text).toMatch(/^Ok: loop recorded as \d+, not posted to the ticket/);
      expect(answers[3]!.text).toMatch(/^Ok: loop recorded as/);
      const posted = await db.pool.query("select count(*)::int as n from ticket_messages where ticket_id = 'TKT-2100'");
      expect(posted.rows[0].n).toBe(2);
      const unrouted = await db.pool.query(
        "select reason from unrouted_messages where ticket_id = 'TKT-2100' order by id",
      );
      expect(unrouted.rows.map((r) => r.reason)).toEqual([
        expect.stringMatching(/^loop: the same text from client@example\.ru to TKT-2100 3 times within an hour/),
        expect.stringMatching(/^loop: /),
      ]);
      // nobody is told of the loop's messages: two notifications, for the two posted
      const notified = await db.pool.query("select count(*)::int as n from outbox where ticket_id = 'TKT-2100'");
      expect(notified.rows[0].n).toBe(2);
      expect(looped.logsWithCode('DATA_NOT_A_REPLY').at(-1)).toMatchObject({ notReply: 'loop' });

      // what people repeat is theirs: a short thanks, the same words to another ticket, another author
      for (let n = 0; n < 3; n++) expect((await post('TKT-2100', 'Спасибо!')).text).toMatch(/^Ok: committed as/);
      expect((await post('TKT-2101', ack(9))).text).toMatch(/^Ok: committed as/);
      expect((await post('TKT-2100', ack(9), 'ivan@flamecrm.ru')).text).toMatch(/^Ok: committed as/);
    } finally {
      await looped.close();
    }
  });
});

describe('malformed MIME', () => {
  it('answers every malformed message with a clear final reply and keeps serving', async () => {
    const messages = malformedMessages(60, 7);
    const outcomes = new Map<string, string>();
    for (const { name, bytes } of messages) {
      const client = await SmtpClient.connect(server.port);
      await client.command('EHLO fuzz.example');
      await client.command('MAIL FROM:<fuzz@example.ru>');
      expect((await client.command('RCPT TO:<support+TKT-1009@flamecrm.ru>')).code).toBe(250);
      const r = await client.data(bytes);
      await client.quit();
      expect(['250 2.0.0', '550 5.6.0', '552 5.3.4'], `${name}: ${r.lines.join(' | ')}`).toContain(r.short);
      outcomes.set(name, r.short);
    }
    console.log('malformed outcomes:', Object.fromEntries(outcomes));
    const after = await send(buildMessage({ messageId: uniqueId(), to: 'support+TKT-1009@flamecrm.ru' }), [
      'support+TKT-1009@flamecrm.ru',
    ]);
    expect(after.short).toBe('250 2.0.0');
    const health = await fetch(`http://127.0.0.1:${server.httpPort}/healthz`);
    expect(health.status).toBe(200);
  }, 120_000);

  it('stores a message with NUL bytes, without them (PostgreSQL text cannot hold NUL)', async () => {
    const messageId = uniqueId();
    const r = await send(
      buildMessage({
        to: 'support+TKT-1009@flamecrm.ru',
        messageId,
        subject: 'nul\u0000here',
        body: 'the answer\u0000 with a NUL',
      }),
      ['support+TKT-1009@flamecrm.ru'],
    );
    expect(r.short).toBe('250 2.0.0');
    const { rows } = await db.pool.query('select subject, reply_text from ticket_messages where message_id = $1', [
      messageId,
    ]);
    expect(rows).toEqual([{ subject: 'nulhere', reply_text: 'the answer with a NUL' }]);
  });

  it('refuses with 550 5.6.0 what has nothing usable in it', async () => {
    const r = await send('\r\n\r\n', ['support+TKT-1009@flamecrm.ru']);
    expect(r.short).toBe('550 5.6.0');
  });
});
