// The SMTP dialogue end to end: a real server on a free port, a real PostgreSQL database of this
// file's own, real clients (nodemailer and a raw socket). Every refusal must leave no rows.
import crypto from 'node:crypto';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { counts, createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, SmtpClient } from '../helpers/smtp-client.js';

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, {
    MAX_MESSAGE_BYTES: '20000',
    SMTP_MAX_RECIPIENTS: '5',
    STAFF_SENDERS: '@flamecrm.ru',
  });
  await insertTestTicket(db.pool, 'TKT-1001', 'client@example.ru', 'Printer on fire');
  await insertTestTicket(db.pool, 'TKT-1002');
  await insertTestTicket(db.pool, 'TKT-1003');
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

beforeEach(async () => {
  // cascade: tables that later migrations add (reply_text_history…) refer to these
  await db.pool.query('truncate raw_messages, ticket_messages, unrouted_messages, attachments cascade');
});

const transport = () =>
  nodemailer.createTransport({ host: '127.0.0.1', port: server.port, secure: false, ignoreTLS: true, pool: false });

async function dialogue(lines: string[]) {
  const client = await SmtpClient.connect(server.port);
  await client.command('EHLO client.example.ru');
  const replies = [];
  for (const line of lines) replies.push((await client.command(line)).short);
  await client.quit();
  return replies;
}

describe('EHLO', () => {
  it('announces an MX: SIZE, PIPELINING, 8BITMIME, SMTPUTF8, no AUTH, no STARTTLS without a certificate', async () => {
    const client = await SmtpClient.connect(server.port);
    expect(client.greeting.code).toBe(220);
    expect(client.greeting.text).toContain('mx.test.flamecrm.ru');
    const ehlo = await client.command('EHLO client.example.ru');
    await client.quit();
    const keywords = ehlo.lines.slice(1).map((l) => l.slice(4));
    expect(keywords).toEqual(
      expect.arrayContaining(['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'SIZE 20000']),
    );
    expect(keywords.some((k) => k.startsWith('AUTH'))).toBe(false);
    expect(keywords).not.toContain('STARTTLS');
  });

  it('does not let AUTH stand in the way of MAIL FROM', async () => {
    expect(await dialogue(['AUTH PLAIN AGFiYwBkZWY=', 'MAIL FROM:<ivan@flamecrm.ru>'])).toEqual([
      '500 5.5.2',
      '250 2.1.0',
    ]);
  });
});

describe('RCPT TO decides each recipient before any data', () => {
  it.each([
    ['support+TKT-1001@flamecrm.ru', '250 2.1.5', 'RCPT_TICKET'],
    ['SUPPORT+tkt-1001@FLAMECRM.RU', '250 2.1.5', 'RCPT_TICKET'],
    ['support+TKT-1001@support.flamecrm.ru', '250 2.1.5', 'RCPT_TICKET'],
    ['support+TKT-404@flamecrm.ru', '550 5.1.1', 'RCPT_UNKNOWN_TICKET'],
    ['support+hello@flamecrm.ru', '550 5.1.1', 'RCPT_BAD_TAG'],
    ['support+TKT-12x@flamecrm.ru', '550 5.1.1', 'RCPT_BAD_TAG'],
    ['support@flamecrm.ru', '250 2.1.5', 'RCPT_SUPPORT'],
    ['sales@flamecrm.ru', '550 5.1.1', 'RCPT_NO_SUCH_MAILBOX'],
    ['sales+TKT-1001@flamecrm.ru', '550 5.1.1', 'RCPT_NO_SUCH_MAILBOX'],
    ['postmaster@flamecrm.ru', '250 2.1.5', 'RCPT_POSTMASTER'],
    ['Abuse@flamecrm.ru', '250 2.1.5', 'RCPT_POSTMASTER'],
    ['postmaster', '250 2.1.5', 'RCPT_POSTMASTER'],
    ['someone@gmail.com', '550 5.7.1', 'RCPT_RELAY_DENIED'],
    ['support+TKT-1001@flamecrm.ru.evil.com', '550 5.7.1', 'RCPT_RELAY_DENIED'],
    ['postmaster@gmail.com', '550 5.7.1', 'RCPT_RELAY_DENIED'],
  ])('RCPT TO:<%s> → %s (%s)', async (rcpt, expected, code) => {
    const before = server.logsWithCode(code).length;
    expect(await dialogue(['MAIL FROM:<ivan@flamecrm.ru>', `RCPT TO:<${rcpt}>`])).toEqual(['250 2.1.0', expected]);
    const logged = server.logsWithCode(code);
    expect(logged.length).toBe(before + 1);
    expect(logged.at(-1)).toMatchObject({
      rcpt,
      ip: '127.0.0.1',
      reply: expect.stringMatching(new RegExp(`^${expected}`)),
    });
  });

  it('names the unknown ticket in the reply', async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@b.ru>');
    const r = await client.command('RCPT TO:<support+tkt-404@flamecrm.ru>');
    await client.quit();
    expect(r.text).toContain('TKT-404');
  });

  it('accepts the null sender <>', async () => {
    expect(await dialogue(['MAIL FROM:<>', 'RCPT TO:<support+TKT-1001@flamecrm.ru>'])).toEqual([
      '250 2.1.0',
      '250 2.1.5',
    ]);
  });

  it('takes the parameters of the extensions it advertises, and refuses any other with 555 5.5.4 (attack run 5)', async () => {
    expect(
      await dialogue([
        'MAIL FROM:<ivan@example.ru> SIZE=1000 BODY=8BITMIME SMTPUTF8',
        'RCPT TO:<support+TKT-1001@flamecrm.ru>',
        'RSET',
        'MAIL FROM:<ivan@example.ru> FOO=bar',
        'MAIL FROM:<ivan@example.ru> RET=HDRS ENVID=x1',
        'MAIL FROM:<ivan@example.ru>',
        'RCPT TO:<support+TKT-1001@flamecrm.ru> NOTIFY=NEVER',
        'RCPT TO:<support+TKT-1001@flamecrm.ru> ORCPT=rfc822;a@b.ru',
        'RCPT TO:<support+TKT-1001@flamecrm.ru>',
      ]),
    ).toEqual([
      '250 2.1.0',
      '250 2.1.5',
      '250 2.0.0',
      '555 5.5.4',
      '555 5.5.4',
      '250 2.1.0',
      '555 5.5.4',
      '555 5.5.4',
      '250 2.1.5',
    ]);
    expect(server.logsWithCode('MAIL_PARAMETER_UNKNOWN').at(-1)).toMatchObject({
      reply: expect.stringContaining('RET'),
    });
    expect(server.logsWithCode('RCPT_PARAMETER_UNKNOWN').at(-1)).toMatchObject({
      reply: expect.stringContaining('ORCPT'),
    });
  });

  it('limits recipients per transaction', async () => {
    // five distinct recipients are allowed (SMTP_MAX_RECIPIENTS=5), the sixth is not
    const distinct = ['1001', '1002', '1003']
      .map((n) => `RCPT TO:<support+TKT-${n}@flamecrm.ru>`)
      .concat(['postmaster@flamecrm.ru', 'abuse@flamecrm.ru', 'postmaster'].map((a) => `RCPT TO:<${a}>`));
    expect(await dialogue(['MAIL FROM:<a@b.ru>', ...distinct])).toEqual([
      '250 2.1.0',
      '250 2.1.5',
      '250 2.1.5',
      '250 2.1.5',
      '250 2.1.5',
      '250 2.1.5',
      '452 4.5.3',
    ]);
    // a refusal smtp-server decides itself still gets its log line
    await expect
      .poll(() => server.logsWithCode('SMTP_PROTOCOL_REFUSED').map((l) => l.reply))
      .toContainEqual(expect.stringMatching(/^452 4\.5\.3 /));
  });
});

describe('DATA commits before 250', () => {
  it('stores a valid reply from nodemailer with its content and envelope', async () => {
    const info = await transport().sendMail({
      envelope: { from: 'bounce-ivan@flamecrm.ru', to: ['support+tkt-1001@flamecrm.ru'] },
      from: 'Иван Петров <Ivan@FlameCRM.ru>',
      to: 'support+TKT-1001@flamecrm.ru',
      subject: 'Re: [TKT-1001] Принтер горит',
      text: 'Заменили картридж, всё работает.',
      html: '<p>Заменили картридж, <b>всё</b> работает.</p>',
      messageId: '<reply-1@mail.flamecrm.ru>',
      inReplyTo: '<notify-TKT-1001-1@flamecrm.ru>',
      references: ['<notify-TKT-1001-0@flamecrm.ru>', '<notify-TKT-1001-1@flamecrm.ru>'],
    });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: committed as \d+$/);
    const rawId = /committed as (\d+)/.exec(info.response)![1];

    const { rows } = await db.pool.query(
      'select tm.*, host(client_ip) as ip, rm.bytes, rm.sha256, rm.size from ticket_messages tm join raw_messages rm on rm.id = tm.raw_message_id',
    );
    expect(rows).toHaveLength(1);
    const row = rows[0];
    expect(row).toMatchObject({
      ticket_id: 'TKT-1001',
      raw_message_id: rawId,
      author_address: 'ivan@flamecrm.ru',
      author_name: 'Иван Петров',
      author_role: 'staff',
      subject: 'Re: [TKT-1001] Принтер горит',
      message_id: '<reply-1@mail.flamecrm.ru>',
      in_reply_to: '<notify-TKT-1001-1@flamecrm.ru>',
      references: ['<notify-TKT-1001-0@flamecrm.ru>', '<notify-TKT-1001-1@flamecrm.ru>'],
      idempotency_key: expect.stringMatching(/^mid:<reply-1@mail\.flamecrm\.ru> sha256:[0-9a-f]{64}$/),
      ip: '127.0.0.1',
      mail_from: 'bounce-ivan@flamecrm.ru',
      rcpt_to: ['support+tkt-1001@flamecrm.ru'],
      tls: false,
    });
    expect(row.full_text.trim()).toBe('Заменили картридж, всё работает.');
    expect(row.reply_text).toBe('Заменили картридж, всё работает.');
    expect(row.html).toContain('<b>всё</b>');
    expect(row.helo).toBeTruthy();
    expect(row.size).toBe(row.bytes.length);
    expect(row.sha256.equals(crypto.createHash('sha256').update(row.bytes).digest())).toBe(true);
    expect(row.bytes.toString()).toContain('Message-ID: <reply-1@mail.flamecrm.ru>');

    const committed = server.logsWithCode('DATA_COMMITTED').at(-1);
    expect(committed).toMatchObject({
      tickets: ['TKT-1001'],
      messageId: '<reply-1@mail.flamecrm.ru>',
      ip: '127.0.0.1',
      rawMessageId: rawId,
    });
    expect(typeof committed?.ms).toBe('number');
  });

  it('refuses an unknown ticket at RCPT and stores nothing', async () => {
    await expect(
      transport().sendMail({ from: 'ivan@flamecrm.ru', to: 'support+TKT-404@flamecrm.ru', subject: 'x', text: 'y' }),
    ).rejects.toMatchObject({
      responseCode: 550,
      response: expect.stringContaining('5.1.1 No such ticket TKT-404'),
    });
    expect(await counts(db.pool)).toEqual({ raw: 0, tm: 0, um: 0 });
  });

  it('refuses relaying and stores nothing', async () => {
    await expect(
      transport().sendMail({ from: 'spammer@example.com', to: 'victim@gmail.com', subject: 'x', text: 'y' }),
    ).rejects.toMatchObject({
      responseCode: 550,
      response: expect.stringContaining('5.7.1 Relaying denied'),
    });
    expect(await counts(db.pool)).toEqual({ raw: 0, tm: 0, um: 0 });
  });

  it('answers in ASCII whatever the address: an IDN domain as its A-label, a UTF-8 local part as ?', async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    expect((await client.command('MAIL FROM:<ivan@example.ru> SMTPUTF8')).code).toBe(250);
    // smtp-server hands the domain over decoded (пример.рф); it goes back as the client wrote it
    const relay = await client.command('RCPT TO:<a@xn--e1afmkfd.xn--p1ai>');
    expect(relay.lines).toEqual(['550 5.7.1 Relaying denied: we do not accept mail for xn--e1afmkfd.xn--p1ai']);
    const unicode = await client.command('RCPT TO:<a@пример.рф>');
    expect(unicode.lines).toEqual(['550 5.7.1 Relaying denied: we do not accept mail for xn--e1afmkfd.xn--p1ai']);
    const mailbox = await client.command('RCPT TO:<иван@flamecrm.ru>');
    expect(mailbox.code).toBe(550);
    expect(mailbox.lines.join('\n')).toMatch(/^550 5\.1\.1 .*\?\?\?\?@flamecrm\.ru/);
    for (const r of [relay, unicode, mailbox]) expect(r.lines.join('')).toMatch(/^[\x20-\x7e]*$/);
    client.destroy();
    expect(await counts(db.pool)).toEqual({ raw: 0, tm: 0, um: 0 });
  });

  it('refuses a message over MAX_MESSAGE_BYTES with 552 5.3.4 and stores nothing', async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
    const r = await client.data(
      buildMessage({ body: 'x'.repeat(76) + '\r\n'.concat(`${'y'.repeat(76)}\r\n`).repeat(400) }),
    );
    expect(r.short).toBe('552 5.3.4');
    // the connection stays usable for the next transaction
    expect((await client.command('RSET')).code).toBe(250);
    await client.quit();
    expect(await counts(db.pool)).toEqual({ raw: 0, tm: 0, um: 0 });
    expect(server.logsWithCode('DATA_TOO_BIG').at(-1)).toMatchObject({ limit: 20000 });
  });

  it('keeps nothing of a message past the cap while it is still arriving', async () => {
    const buffered = async () =>
      Number(
        /^ticketmx_smtp_buffered_bytes (\d+)/m.exec(
          await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text(),
        )![1],
      );
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
    expect((await client.command('DATA')).code).toBe(354);
    client.write(buildMessage({ body: `${'z'.repeat(98)}\r\n`.repeat(100) })); // 10 KB: under the cap, held
    await expect.poll(buffered).toBeGreaterThan(5_000);
    client.write(`${'z'.repeat(98)}\r\n`.repeat(10_000)); // 1 MB more: past the cap, let go
    await expect.poll(buffered).toBe(0);
    client.write('.\r\n');
    expect((await client.next()).short).toBe('552 5.3.4');
    await client.quit();
  });

  it('refuses a client that talks before the greeting when SMTP_GREETING_DELAY_MS is set', async () => {
    const slow = await startTestServer(db.url, { SMTP_GREETING_DELAY_MS: '300' });
    try {
      const net = await import('node:net');
      const socket = net.connect(slow.port, '127.0.0.1');
      let seen = '';
      socket.on('data', (d) => (seen += d.toString()));
      socket.write('EHLO early.example\r\n');
      await expect.poll(() => seen, { timeout: 3000 }).toMatch(/^421 .*too soon/m);
      socket.destroy();
      const polite = await SmtpClient.connect(slow.port);
      expect(polite.greeting.code).toBe(220);
      await polite.quit();
    } finally {
      await slow.close();
    }
  });

  it('refuses a declared SIZE over the limit at MAIL FROM', async () => {
    expect(await dialogue(['MAIL FROM:<ivan@flamecrm.ru> SIZE=50000'])).toEqual(['552 5.3.4']);
  });

  it('answers a pipelined transaction with mixed recipients in order and stores for the good ones', async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    const replies = await client.pipeline([
      'MAIL FROM:<ivan@flamecrm.ru>',
      'RCPT TO:<support+TKT-1001@flamecrm.ru>',
      'RCPT TO:<support+TKT-404@flamecrm.ru>',
      'RCPT TO:<stranger@gmail.com>',
      'RCPT TO:<support+TKT-1002@flamecrm.ru>',
      'RCPT TO:<support+nonsense@flamecrm.ru>',
      'DATA',
    ]);
    expect(replies.map((r) => r.short)).toEqual([
      '250 2.1.0',
      '250 2.1.5',
      '550 5.1.1',
      '550 5.7.1',
      '250 2.1.5',
      '550 5.1.1',
      '354',
    ]);
    client.write(Buffer.from(`${buildMessage({ messageId: '<pipelined@x>' }).replace(/\r?\n/g, '\r\n')}.\r\n`));
    const done = await client.next();
    await client.quit();
    expect(done.short).toBe('250 2.0.0');
    const { rows } = await db.pool.query('select ticket_id, rcpt_to from ticket_messages order by ticket_id');
    expect(rows).toEqual([
      { ticket_id: 'TKT-1001', rcpt_to: ['support+TKT-1001@flamecrm.ru', 'support+TKT-1002@flamecrm.ru'] },
      { ticket_id: 'TKT-1002', rcpt_to: ['support+TKT-1001@flamecrm.ru', 'support+TKT-1002@flamecrm.ru'] },
    ]);
    expect(await counts(db.pool)).toEqual({ raw: 1, tm: 2, um: 0 });
  });

  it('handles two transactions on one connection independently', async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    expect((await client.command('MAIL FROM:<ivan@flamecrm.ru>')).code).toBe(250);
    expect((await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>')).code).toBe(250);
    expect((await client.data(buildMessage({ messageId: '<first@x>', body: 'first' }))).short).toBe('250 2.0.0');
    // the second transaction must not inherit the first one's recipients
    expect((await client.command('MAIL FROM:<ivan@flamecrm.ru>')).code).toBe(250);
    expect((await client.command('RCPT TO:<support+TKT-1002@flamecrm.ru>')).code).toBe(250);
    expect((await client.data(buildMessage({ messageId: '<second@x>', body: 'second' }))).short).toBe('250 2.0.0');
    await client.quit();
    const { rows } = await db.pool.query('select ticket_id, message_id, reply_text from ticket_messages order by id');
    expect(rows).toEqual([
      { ticket_id: 'TKT-1001', message_id: '<first@x>', reply_text: 'first' },
      { ticket_id: 'TKT-1002', message_id: '<second@x>', reply_text: 'second' },
    ]);
    const tnx = server
      .logsWithCode('DATA_COMMITTED')
      .slice(-2)
      .map((l) => l.tnx as string);
    expect(tnx[0]!.split('.')[0]).toBe(tnx[1]!.split('.')[0]);
    expect(tnx[0]).not.toBe(tnx[1]);
  });

  it('stores one row per ticket, all in one transaction, for a message to several tickets', async () => {
    const info = await transport().sendMail({
      from: 'ivan@flamecrm.ru',
      to: ['support+TKT-1001@flamecrm.ru', 'support+TKT-1002@flamecrm.ru', 'postmaster@flamecrm.ru'],
      subject: 'both',
      text: 'one answer for both',
    });
    expect(info.accepted).toHaveLength(3);
    const { rows } = await db.pool.query(
      'select distinct raw_message_id from ticket_messages union select raw_message_id from unrouted_messages',
    );
    expect(rows).toHaveLength(1);
    expect(await counts(db.pool)).toEqual({ raw: 1, tm: 2, um: 1 });
  });

  it('stores postmaster mail as unrouted mail', async () => {
    await transport().sendMail({
      from: 'admin@example.org',
      to: 'postmaster@flamecrm.ru',
      subject: 'your MX',
      text: 'hello postmaster',
    });
    const { rows } = await db.pool.query('select recipient, reason, from_address, subject from unrouted_messages');
    expect(rows).toEqual([
      {
        recipient: 'postmaster@flamecrm.ru',
        reason: 'postmaster',
        from_address: 'admin@example.org',
        subject: 'your MX',
      },
    ]);
    expect((await counts(db.pool)).tm).toBe(0);
  });

  it('stores the same message delivered twice only once (same Message-ID)', async () => {
    const message = buildMessage({ messageId: '<twice@mail.flamecrm.ru>' });
    const send = async () => {
      const client = await SmtpClient.connect(server.port);
      await client.command('EHLO x');
      await client.command('MAIL FROM:<ivan@flamecrm.ru>');
      await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
      const r = await client.data(message);
      await client.quit();
      return r;
    };
    const first = await send();
    const second = await send();
    expect(first.short).toBe('250 2.0.0');
    expect(second.short).toBe('250 2.0.0');
    expect(second.text).toBe(`Ok: already committed as ${/committed as (\d+)/.exec(first.text)![1]}`);
    expect(await counts(db.pool)).toEqual({ raw: 1, tm: 1, um: 0 });
    expect(server.logsWithCode('DATA_DUPLICATE').at(-1)).toMatchObject({ messageId: '<twice@mail.flamecrm.ru>' });
  });

  it('recognises a retry without Message-ID by its body hash, even with a new Received line', async () => {
    const message = buildMessage({ messageId: null, body: 'no message id here' });
    const send = async (extra: string) => {
      const client = await SmtpClient.connect(server.port);
      await client.command('EHLO x');
      await client.command('MAIL FROM:<ivan@flamecrm.ru>');
      await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
      const r = await client.data(extra + message);
      await client.quit();
      return r.short;
    };
    expect(await send('Received: from a by b; Thu, 26 Nov 2026 10:00:01 +0300\r\n')).toBe('250 2.0.0');
    expect(await send('Received: from c by d; Thu, 26 Nov 2026 10:05:00 +0300\r\n')).toBe('250 2.0.0');
    expect(await send('')).toBe('250 2.0.0');
    expect(await counts(db.pool)).toEqual({ raw: 1, tm: 1, um: 0 });
    // a different body is a different message
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
    expect((await client.data(buildMessage({ messageId: null, body: 'another answer' }))).short).toBe('250 2.0.0');
    await client.quit();
    expect((await counts(db.pool)).tm).toBe(2);
  });

  it('adds only the missing row when a duplicate goes to a new ticket too', async () => {
    const message = buildMessage({ messageId: '<partial@x>' });
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
    expect((await client.data(message)).short).toBe('250 2.0.0');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-1002@flamecrm.ru>');
    const r = await client.data(message);
    await client.quit();
    expect(r.text).toMatch(/^Ok: committed as/);
    expect(await counts(db.pool)).toEqual({ raw: 2, tm: 2, um: 0 });
  });

  it('stores a message with an 8 KB Message-ID once, and recognises its retry', async () => {
    const messageId = `<${'x'.repeat(8000)}@mail.flamecrm.ru>`;
    const send = async () => {
      const client = await SmtpClient.connect(server.port);
      await client.command('EHLO x');
      await client.command('MAIL FROM:<ivan@flamecrm.ru>');
      await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
      const r = await client.data(buildMessage({ messageId }));
      await client.quit();
      return r.text;
    };
    expect(await send()).toMatch(/^Ok: committed as/);
    expect(await send()).toMatch(/^Ok: already committed as/);
    const { rows } = await db.pool.query('select idempotency_key, length(message_id) as n from ticket_messages');
    expect(rows).toEqual([
      { idempotency_key: expect.stringMatching(/^mid-sha256:[0-9a-f]{64} sha256:[0-9a-f]{64}$/), n: messageId.length },
    ]);
  });

  it('answers 421 4.3.1 and closes when all connections together would hold more than SMTP_MAX_BUFFERED_BYTES', async () => {
    const tight = await startTestServer(
      db.url,
      { MAX_MESSAGE_BYTES: '1048576', SMTP_MAX_BUFFERED_BYTES: '1048576' },
      server.dns,
    );
    try {
      const open = async (ip?: string) => {
        const c = await SmtpClient.connect(tight.port, '127.0.0.1', ip);
        await c.command('EHLO x');
        await c.command('MAIL FROM:<ivan@flamecrm.ru>');
        await c.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
        return c;
      };
      const body = `${'y'.repeat(98)}\r\n`.repeat(6000); // 600 KB
      const first = await open();
      expect((await first.command('DATA')).code).toBe(354);
      first.write(`${buildMessage({ messageId: '<held@x>', body: '' })}${body}`); // held open: no final dot yet
      await expect
        .poll(() => (tight.service.smtp.server as unknown as { connections: Set<unknown> }).connections.size)
        .toBe(1);
      await new Promise((r) => setTimeout(r, 200));
      // from another network: its own shares are untouched, all connections together are full
      const second = await open('127.0.1.1');
      const refused = await second.data(`${buildMessage({ messageId: '<second@x>', body: '' })}${body}`);
      expect(refused.short).toBe('421 4.3.1');
      await expect.poll(() => second.isClosed).toBe(true);
      await second.quit();
      first.write('.\r\n');
      expect((await first.next()).short).toBe('250 2.0.0');
      await first.quit();
      expect(tight.logsWithCode('DATA_BUSY')).toHaveLength(1);
    } finally {
      await tight.close();
    }
  });

  it('closes a session that outlives SMTP_MAX_SESSION_MS with 421 4.4.2, however busy it keeps', async () => {
    const short = await startTestServer(db.url, { SMTP_MAX_SESSION_MS: '1000' }, server.dns);
    try {
      const client = await SmtpClient.connect(short.port);
      await client.command('EHLO x');
      const replies: string[] = [];
      for (let i = 0; i < 20 && !client.isClosed; i++) {
        replies.push((await client.command('NOOP')).short);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(client.isClosed).toBe(true);
      replies.push((await client.next()).short); // the 421 may have come between two NOOPs
      expect(replies).toContain('421 4.4.2');
      expect(short.logsWithCode('SMTP_SESSION_TOO_LONG')).toHaveLength(1);
    } finally {
      await short.close();
    }
  });

  it('stores nothing when the client goes away in the middle of DATA, and keeps serving', async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
    expect((await client.command('DATA')).code).toBe(354);
    client.write('Subject: half\r\n\r\nhalf a message');
    client.destroy();
    await expect.poll(() => server.logsWithCode('DATA_ABORTED').length).toBeGreaterThan(0);
    expect(await counts(db.pool)).toEqual({ raw: 0, tm: 0, um: 0 });
    const info = await transport().sendMail({
      from: 'ivan@flamecrm.ru',
      to: 'support+TKT-1001@flamecrm.ru',
      subject: 'after',
      text: 'still here',
    });
    expect(info.response).toMatch(/^250 2\.0\.0/);
  });

  it('logs each decision once with a stable code, the reply and the duration', async () => {
    const before = server.logs.length;
    await transport().sendMail({
      from: 'ivan@flamecrm.ru',
      to: 'support+TKT-1003@flamecrm.ru',
      subject: 'log me',
      text: 'x',
      messageId: '<log@x>',
    });
    const lines = server.logs
      .slice(before)
      .filter((l) => typeof l.code === 'string' && /^(MAIL|RCPT|DATA)_/.test(l.code as string));
    expect(lines.map((l) => l.code)).toEqual(['MAIL_FROM_ACCEPTED', 'RCPT_TICKET', 'DATA_COMMITTED']);
    for (const l of lines)
      expect(l).toMatchObject({
        ip: '127.0.0.1',
        reply: expect.stringMatching(/^250 2\./),
        cid: expect.any(String),
        tnx: expect.any(String),
      });
    expect(lines[2]).toMatchObject({ messageId: '<log@x>', tickets: ['TKT-1003'], ms: expect.any(Number) });
  });
});

// attack run 4, F-info-1: TKT-000000000000000001 was a ticket of its own, and support+TKT-0001@ 550
describe('ticket numbers with leading zeros in mail', () => {
  beforeAll(async () => {
    await insertTestTicket(db.pool, 'TKT-5');
    // made before new ids were checked (the API took them): it keeps its own mail
    await insertTestTicket(db.pool, 'TKT-0000600');
    await insertTestTicket(db.pool, 'TKT-600');
  });

  const sent = async (to: string, subject: string, envelopeTo = to) => {
    const info = await transport().sendMail({
      envelope: { from: 'client@example.ru', to: [envelopeTo] },
      from: 'client@example.ru',
      to,
      subject,
      text: `to ${to}, ${subject}`,
    });
    const { rows } = await db.pool.query("select ticket_id from ticket_messages where full_text like $1 || '%'", [
      `to ${to}, ${subject}`,
    ]);
    return { response: info.response, tickets: rows.map((r) => r.ticket_id) };
  };

  it('reach the ticket of that number: support+TKT-0005@ and [TKT-005] on bare support@ are TKT-5', async () => {
    expect(await sent('support+TKT-0005@flamecrm.ru', 'Re: x')).toMatchObject({ tickets: ['TKT-5'] });
    expect(await sent('support+tkt-000000000000000005@flamecrm.ru', 'Re: y')).toMatchObject({ tickets: ['TKT-5'] });
    const bare = await sent('support@flamecrm.ru', 'Re: [TKT-005] z');
    expect(bare).toMatchObject({ response: expect.stringMatching(/^250 /), tickets: ['TKT-5'] });
    const none = await dialogue(['MAIL FROM:<a@b.ru>', 'RCPT TO:<support+TKT-0404@flamecrm.ru>']);
    expect(none).toEqual(['250 2.1.0', '550 5.1.1']);
  });

  it('reach a ticket stored with that very id when one exists, and TKT-600 stays TKT-600', async () => {
    expect(await sent('support+TKT-0000600@flamecrm.ru', 'Re: a')).toMatchObject({ tickets: ['TKT-0000600'] });
    expect(await sent('support+TKT-600@flamecrm.ru', 'Re: b')).toMatchObject({ tickets: ['TKT-600'] });
    expect(await sent('support+TKT-0600@flamecrm.ru', 'Re: c')).toMatchObject({ tickets: ['TKT-600'] });
  });
});

describe('HTTP', () => {
  it('answers /healthz and /metrics', async () => {
    const health = await fetch(`http://127.0.0.1:${server.httpPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', database: 'ok' });
    await transport()
      .sendMail({ from: 'ivan@flamecrm.ru', to: 'support+TKT-404@flamecrm.ru', subject: 'x', text: 'y' })
      .catch(() => undefined);
    const metrics = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/ticketmx_smtp_decisions_total\{code="RCPT_UNKNOWN_TICKET",reply="550"\} [1-9]/);
    expect(metrics).toContain('ticketmx_data_seconds_bucket');
  });
});
