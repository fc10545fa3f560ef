// Issue 9, "Hostile mail cannot stall, poison or impersonate": each defect with the bytes the attack
// run used, through SMTP against a real server (AUTH_POLICY=enforce, staff domain with DKIM/SPF/DMARC
// on loopback DNS) and a real PostgreSQL. Bounds on time are generous: they separate "answered"
// from "stalled for tens of seconds", not fast from slow.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REFUSAL_FIELD_CHARS, REFUSALS_PER_TICKET_PER_HOUR } from '../../src/db/queries.js';
import { recordRefusals } from '../../src/pipeline/deliver.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { counts, createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { publishDkimKey } from '../helpers/dns-server.js';
import { dkimSigned } from '../helpers/mail-auth.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver, SmtpClient } from '../helpers/smtp-client.js';

let db: TestDatabase;
let server: TestServer;
let staffKey: string;

const ENFORCE = { AUTH_POLICY: 'enforce', STAFF_SENDERS: '@flamecrm.ru', TICKET_MAX_MESSAGES_PER_HOUR: '0' };

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, ENFORCE);
  staffKey = publishDkimKey(server.dns, 'flamecrm.ru', 'mail');
  await insertTestTicket(db.pool, 'TKT-2001', 'client@example.ru');
  await insertTestTicket(db.pool, 'TKT-2002', 'other@example.ru');
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

beforeEach(async () => {
  await db.pool.query(
    'truncate raw_messages, ticket_messages, unrouted_messages, attachments, unrouted_budget cascade',
  );
});

let seq = 0;
const mid = () => `<hostile-${++seq}-${process.pid}@mail.flamecrm.ru>`;
const staffMail = (opts: Parameters<typeof buildMessage>[0] = {}) =>
  buildMessage({ to: 'support+TKT-2001@flamecrm.ru', messageId: mid(), ...opts });
/** A real staff message, signed by flamecrm.ru: what anyone holding one could replay. */
const signedStaffMail = (opts: Parameters<typeof buildMessage>[0] = {}, extra = {}) =>
  dkimSigned(staffMail(opts), 'flamecrm.ru', 'mail', staffKey, extra);

/** Sent by a server SPF does not list (127.0.0.9): only the DKIM signature can authenticate it. */
const replay = (message: string | Buffer, to = ['support+TKT-2001@flamecrm.ru'], srv = server) =>
  deliver(srv.port, { ip: '127.0.0.9', from: 'ivan@flamecrm.ru', to, message });
/** From the staff mail server itself (SPF passes). */
const fromStaff = (message: string | Buffer, to = ['support+TKT-2001@flamecrm.ru'], srv = server) =>
  deliver(srv.port, { ip: '127.0.0.1', from: 'ivan@flamecrm.ru', to, message });

/** Sends a normal message now and again while `work` runs; resolves with the longest wait. */
async function normalClientDuring(work: Promise<unknown>, srv = server): Promise<{ worst: number; replies: string[] }> {
  let done = false;
  const replies: string[] = [];
  let worst = 0;
  const loop = (async () => {
    while (!done) {
      const started = performance.now();
      const r = await fromStaff(staffMail({ body: 'Обычный ответ.' }), undefined, srv);
      worst = Math.max(worst, performance.now() - started);
      replies.push(r.short);
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  await work;
  done = true;
  await loop;
  return { worst, replies };
}

describe('defect 1: a folded header cannot freeze the server', () => {
  // X-Fold: a, then 100,000 lines of "\r\n b" (400 KB): 24 s in mailauth's header parser before
  const folded = () => staffMail({ headers: [`X-Fold: a${'\r\n b'.repeat(100_000)}`] });

  it('refuses it with 550 5.6.0 before any parser, and another client is answered meanwhile', async () => {
    const started = performance.now();
    const hostile = replay(folded());
    const { worst, replies } = await normalClientDuring(hostile);
    const r = await hostile;
    expect(r.short).toBe('550 5.6.0');
    expect(r.text).toContain('header block is over 1000 lines');
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(replies.every((x) => x === '250 2.0.0')).toBe(true);
    expect(worst).toBeLessThan(10_000);
    expect(server.logsWithCode('DATA_HEADER_LIMIT').at(-1)).toMatchObject({
      reply: expect.stringMatching(/^550 5\.6\.0/),
    });
  });

  it('refuses a header block over MAX_HEADER_BYTES (one long line) the same way', async () => {
    const r = await replay(staffMail({ headers: [`X-Long: ${'b'.repeat(300_000)}`] }));
    expect(r.short).toBe('550 5.6.0');
    expect(r.text).toContain('over 262144 bytes');
  });
});

describe('defect 2: HTML nesting the old guard did not count', () => {
  // 100,000 <p><li> pairs in an HTML-only multipart/mixed (28–31 s before the 550)
  const htmlOnly = (from: string) => {
    const boundary = 'mixed-boundary';
    return buildMessage({ from, messageId: mid() }).replace(
      'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe printer works again.\r\n',
      `Content-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n--${boundary}\r\n` +
        `Content-Type: text/html; charset=utf-8\r\n\r\n<p>Готово</p>${'<p><li>'.repeat(100_000)}\r\n--${boundary}--\r\n`,
    );
  };

  it('refuses a stranger on the From line, before the HTML is parsed', async () => {
    const started = performance.now();
    const r = await deliver(server.port, {
      ip: '127.0.0.3',
      from: 'someone@stranger.org',
      to: ['support+TKT-2001@flamecrm.ru'],
      message: htmlOnly('someone@stranger.org'),
    });
    expect(r.short).toBe('550 5.7.1');
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("stores staff's such message with its text, the HTML kept as escaped text", async () => {
    const started = performance.now();
    const r = await fromStaff(htmlOnly('ivan@flamecrm.ru'));
    expect(r.short).toBe('250 2.0.0');
    expect(performance.now() - started).toBeLessThan(10_000);
    const { rows } = await db.pool.query('select reply_text, html from ticket_messages');
    expect(rows[0].reply_text).toContain('Готово');
    expect(rows[0].html.startsWith('<pre>')).toBe(true);
  });
});

describe('defect 3: what is authenticated is what is stored', () => {
  it('accepts the genuine staff message, replayed from anywhere (DKIM alone authenticates it)', async () => {
    expect((await replay(await signedStaffMail())).short).toBe('250 2.0.0');
  });

  it.each([
    ['Subject', 'Subject: Срочно: смените реквизиты оплаты'],
    ['Message-ID', 'Message-ID: <prepended@attacker.example>'],
    ['X-Ticket-ID', 'X-Ticket-ID: TKT-2002'],
    ['Content-Type', 'Content-Type: text/html; charset=utf-8'],
  ])('refuses a second %s prepended to a genuine signature with 550 5.6.0, storing nothing', async (field, line) => {
    const genuine = await signedStaffMail(
      { headers: ['X-Ticket-ID: TKT-2001'] },
      { headerList: 'From:To:Subject:Date:Message-ID:X-Ticket-ID:MIME-Version:Content-Type:Content-Transfer-Encoding' },
    );
    expect((await replay(genuine)).short).toBe('250 2.0.0');
    await db.pool.query('truncate raw_messages, ticket_messages, unrouted_messages, attachments cascade');
    const r = await replay(Buffer.concat([Buffer.from(`${line}\r\n`), genuine]));
    expect(r.short).toBe('550 5.6.0');
    expect(r.text).toContain(`2 ${field} header fields`);
    expect(await counts(db.pool)).toEqual({ raw: 0, tm: 0, um: 0 });
    expect(server.logsWithCode('DATA_DUPLICATE_HEADER').at(-1)).toMatchObject({
      reply: expect.stringContaining(field),
    });
  });

  // attack run 4, F-low-1: a signer signs the fields that are there; a staff message without MIME
  // fields, replayed with them added, would have been stored as staff's with its signed bytes read
  // as UTF-7 in base64 (garbage, or other parts), as AUTH_ACCEPTED
  describe('fields that decide how the body is read, added to a signature that does not cover them', () => {
    const noMime = async () => {
      const lines = staffMail({ subject: 'Re: [TKT-2001] Картридж', body: 'plain staff text' }).split('\r\n');
      const bare = lines.filter((line) => !/^(MIME-Version|Content-Type|Content-Transfer-Encoding):/i.test(line));
      return (
        await dkimSigned(bare.join('\r\n'), 'flamecrm.ru', 'mail', staffKey, {
          headerList: 'from:to:subject:date:message-id',
        })
      ).toString('latin1');
    };
    const withMime = (signed: string) =>
      Buffer.from(
        signed.replace(
          '\r\n\r\n',
          '\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-7\r\nContent-Transfer-Encoding: base64\r\n\r\n',
        ),
        'latin1',
      );

    it('refuses the replay with 550 5.7.21 when DKIM alone authenticates it, storing nothing', async () => {
      const r = await replay(withMime(await noMime()));
      expect(r.short).toBe('550 5.7.21');
      expect(r.text).toBe(
        'DKIM signature of flamecrm.ru does not cover MIME-Version, Content-Type, Content-Transfer-Encoding: ' +
          "sign them, or send through flamecrm.ru's own servers",
      );
      expect(await counts(db.pool)).toEqual({ raw: 0, tm: 0, um: 0 });
      const line = server.logsWithCode('DATA_AUTH_REJECTED').at(-1);
      expect(line).toMatchObject({ auth: 'AUTH_MIME_UNSIGNED', role: 'staff', authenticatedBy: 'dmarc' });
      expect(String(line!.reason)).toContain('does not cover MIME-Version, Content-Type, Content-Transfer-Encoding');
    });

    it('accepts the genuine message without MIME fields, its text as signed', async () => {
      expect((await replay(Buffer.from(await noMime(), 'latin1'))).short).toBe('250 2.0.0');
      const { rows } = await db.pool.query('select reply_text, auth_verdict from ticket_messages');
      expect(rows).toEqual([{ reply_text: 'plain staff text', auth_verdict: 'AUTH_ACCEPTED' }]);
    });

    it('does not ask when SPF authenticates the staff member (sent by their own servers as it is)', async () => {
      expect((await fromStaff(withMime(await noMime()))).short).toBe('250 2.0.0');
      const { rows } = await db.pool.query('select auth_verdict from ticket_messages');
      expect(rows).toEqual([{ auth_verdict: 'AUTH_ACCEPTED' }]);
    });
  });

  it('does not count a DKIM pass whose l= is shorter than the body: text appended past it is refused', async () => {
    const body = 'Заменили картридж.';
    const signed = await signedStaffMail({ body }, { maxBodyLength: Buffer.byteLength(`${body}\r\n`) });
    expect((await replay(signed)).short).toBe('250 2.0.0'); // l= covering the whole body is fine
    await db.pool.query('truncate raw_messages, ticket_messages, unrouted_messages, attachments cascade');
    const appended = Buffer.concat([signed, Buffer.from('Оплатите счёт по новым реквизитам: 4000 0000 0000 0002\r\n')]);
    const r = await replay(appended);
    expect(r.code).toBe(550);
    expect(r.enhanced).toMatch(/^5\.7\./);
    const { rows } = await db.pool.query("select 1 from ticket_messages where reply_text like '%реквизитам%'");
    expect(rows).toEqual([]);
  });

  it('records the partial signature as dkim=policy under monitor', async () => {
    const monitor = await startTestServer(db.url, { ...ENFORCE, AUTH_POLICY: 'monitor' }, server.dns);
    try {
      const body = 'Заменили картридж.';
      const signed = await signedStaffMail({ body }, { maxBodyLength: Buffer.byteLength(`${body}\r\n`) });
      const r = await replay(Buffer.concat([signed, Buffer.from('Appended.\r\n')]), undefined, monitor);
      expect(r.short).toBe('250 2.0.0');
      const { rows } = await db.pool.query('select auth_results, auth_verdict from ticket_messages');
      expect(rows[0].auth_verdict).toBe('AUTH_UNAUTHENTICATED');
      expect(rows[0].auth_results.dkim[0]).toMatchObject({ result: 'policy', unsignedBodyBytes: 11 });
      expect(rows[0].auth_results.dmarc.result).toBe('fail');
    } finally {
      await monitor.close();
    }
  });
});

describe('why a message was refused', () => {
  it('is in ticket show (text and --json) and in the log line, at most 20 a ticket an hour', async () => {
    const prepended = Buffer.concat([Buffer.from('Subject: Новые реквизиты\r\n'), await signedStaffMail()]);
    expect((await replay(prepended, ['support+TKT-2002@flamecrm.ru'])).short).toBe('550 5.6.0');
    const stranger = await deliver(server.port, {
      ip: '127.0.0.3',
      from: 'someone@stranger.org',
      to: ['support+TKT-2002@flamecrm.ru'],
      message: staffMail({ from: 'someone@stranger.org' }),
    });
    expect(stranger.short).toBe('550 5.7.1');
    const recorded = async () =>
      (await db.pool.query("select 1 from refused_messages where ticket_id = 'TKT-2002'")).rowCount;
    await expect.poll(recorded).toBe(2);
    const env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' });
    const human = (await runCli(['ticket', 'show', 'TKT-2002'], env)).stdout;
    expect(human).toContain('2 refused at DATA');
    // refused before any parser: what it says about itself is not read
    expect(human).toMatch(/refused .* from \(no From\) via 127\.0\.0\.9/);
    expect(human).toContain('550 5.6.0 Message has 2 Subject header fields; RFC 5322 3.6 allows one');
    expect(human).toContain('550 5.7.1 <someone@stranger.org> is not allowed to write to this ticket');
    expect(human).toContain("someone@stranger.org is neither staff nor the ticket's requester");
    const json = JSON.parse((await runCli(['ticket', 'show', 'TKT-2002', '--json'], env)).stdout);
    expect(json.refused.map((r: { code: string }) => r.code)).toEqual(['DATA_DUPLICATE_HEADER', 'DATA_AUTH_REJECTED']);
    // a flood of refusals records no more than its share
    for (let i = 0; i < 25; i++)
      await replay(Buffer.concat([Buffer.from('Subject: x\r\n'), await signedStaffMail()]), [
        'support+TKT-2002@flamecrm.ru',
      ]);
    await new Promise((r) => setTimeout(r, 500));
    expect(await recorded()).toBe(20);
  });
});

describe('the refusals of a ticket', () => {
  it("recorded at the same moment, keep to the hour's share exactly", async () => {
    await insertTestTicket(db.pool, 'TKT-2004', 'client@example.ru');
    const errors: Error[] = [];
    // side by side, each statement counted the same rows: 25 made up to 25 rows
    for (let i = 0; i < 25; i++)
      recordRefusals(
        db.pool,
        ['TKT-2004'],
        {
          code: 'DATA_AUTH_REJECTED',
          reply: `550 5.7.1 no ${i}`,
          reason: 'test',
          fromAddress: null,
          messageId: null,
          clientIp: '127.0.0.1',
        },
        (err) => errors.push(err),
      );
    const recorded = async () =>
      (await db.pool.query("select 1 from refused_messages where ticket_id = 'TKT-2004'")).rowCount;
    await expect.poll(recorded).toBe(REFUSALS_PER_TICKET_PER_HOUR);
    await new Promise((r) => setTimeout(r, 300));
    expect(await recorded()).toBe(REFUSALS_PER_TICKET_PER_HOUR);
    expect(errors).toEqual([]);
  });
});

describe('a refusal row is bounded', () => {
  it('keeps the first REFUSAL_FIELD_CHARS of a huge From and Message-ID (as sent), and of the reason naming them', async () => {
    await insertTestTicket(db.pool, 'TKT-2003', 'client@example.ru');
    // the header block stays under MAX_HEADER_BYTES (256 KiB), so it is read, then refused at authorization
    const from = `${'a'.repeat(100_000)}@stranger.org`;
    const messageId = `<${'m'.repeat(100_000)}@stranger.org>`;
    const r = await deliver(server.port, {
      ip: '127.0.0.3',
      from: 'someone@stranger.org',
      to: ['support+TKT-2003@flamecrm.ru'],
      message: buildMessage({ from, to: 'support+TKT-2003@flamecrm.ru', messageId }),
    });
    expect(r.short).toBe('550 5.7.1');
    // the reply line quotes the start of the From address, within RFC 5321's 512 octets
    expect(r.lines).toEqual([`550 5.7.1 <${'a'.repeat(197)}...> is not allowed to write to this ticket`]);
    const row = async () =>
      (
        await db.pool.query<{ from_address: string; message_id: string; reply: string; reason: string }>(
          "select from_address, message_id, reply, reason from refused_messages where ticket_id = 'TKT-2003'",
        )
      ).rows[0];
    await expect.poll(row).toBeDefined();
    const { from_address, message_id, reply, reason } = (await row())!;
    expect([REFUSAL_FIELD_CHARS, from_address.length, message_id.length]).toEqual([65_536, 65_536, 65_536]);
    expect(from_address).toBe(from.slice(0, REFUSAL_FIELD_CHARS));
    expect(message_id).toBe(messageId.slice(0, REFUSAL_FIELD_CHARS));
    // the reply recorded is the line sent; the reason names the From address, bounded as the From
    expect(reply).toBe(r.lines[0]);
    expect(reason.startsWith('aaaa')).toBe(true);
    expect(reason.length).toBe(REFUSAL_FIELD_CHARS);
    // the log line has the whole address
    const logged = server.logsWithCode('DATA_AUTH_REJECTED').find((l) => l.reply === r.lines[0]);
    expect(logged?.from).toBe(from);
  });
});

describe('a reply line is at most 512 octets (RFC 5321 4.5.3.1.5), whatever the client sent', () => {
  const within = (lines: string[]) => {
    for (const line of lines) expect(Buffer.byteLength(`${line}\r\n`)).toBeLessThanOrEqual(512);
    for (const line of lines) expect(line).toMatch(/^[\x20-\x7e]*$/);
  };

  // smtp-server takes an address of at most 253 characters, and a command line of at most 2048 (ours)
  it('quotes the start of a long recipient, domain or tag, and the log line has all of it', async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<someone@stranger.org>');
    const local = 'l'.repeat(240);
    const mailbox = await client.command(`RCPT TO:<${local}@flamecrm.ru>`);
    expect(mailbox.lines).toEqual([
      `550 5.1.1 No such mailbox <${'l'.repeat(197)}...>; replies go to support+TKT-<number>@`,
    ]);
    const domain = `${'d'.repeat(60)}.`.repeat(4);
    const relay = await client.command(`RCPT TO:<a@${domain}ru>`);
    expect(relay.lines).toEqual([
      `550 5.7.1 Relaying denied: we do not accept mail for ${`${'d'.repeat(60)}.`.repeat(3)}${'d'.repeat(14)}...`,
    ]);
    const tag = await client.command(`RCPT TO:<support+${'т'.repeat(230)}@flamecrm.ru>`);
    expect(tag.short).toBe('550 5.1.1');
    expect(tag.lines[0]).toMatch(/^550 5\.1\.1 No such mailbox: "\?{197}\.\.\." is not a ticket reference/);
    within([...mailbox.lines, ...relay.lines, ...tag.lines]);
    await client.quit();
    const rcpts = server.logsWithCode('RCPT_NO_SUCH_MAILBOX').map((l) => l.rcpt);
    expect(rcpts).toContain(`${local}@flamecrm.ru`);
  });

  it("holds smtp-server's own replies too: a long parameter named twice, a 10 K local part", async () => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    const param = 'P'.repeat(900);
    const twice = await client.command(`MAIL FROM:<a@stranger.org> ${param}=1 ${param}=2`);
    expect(twice.code).toBe(501);
    expect(twice.lines[0]).toMatch(/^501 (5\.\d\.\d )?Error: duplicate P+\.\.\.$/);
    within(twice.lines);
    await client.command('MAIL FROM:<a@stranger.org>');
    const long = await client.command(`RCPT TO:<${'x'.repeat(10_000)}@flamecrm.ru>`);
    expect(long.code).toBeGreaterThanOrEqual(400);
    within(long.lines);
    client.destroy();
  });
});

describe('defect 5: poison strings get 250, then a duplicate 250, never 451 forever', () => {
  const attachment = (contentType: string) => {
    const boundary = 'poison-boundary';
    return buildMessage({ messageId: mid() }).replace(
      'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe printer works again.\r\n',
      `Content-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n--${boundary}\r\n` +
        'Content-Type: text/plain; charset=utf-8\r\n\r\nСчёт во вложении.\r\n' +
        `--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Disposition: attachment; filename="a.pdf"\r\n` +
        `Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--${boundary}--\r\n`,
    );
  };
  it.each([
    ['a NUL in an attachment Content-Type', () => attachment('application/pdf\u0000x; name="a.pdf"')],
    ['a lone surrogate in the Subject', () => staffMail({ subject: '=?utf-16be?B?2AA=?=' })],
    ['a lone surrogate in the From display name', () => staffMail({ from: '=?utf-16be?B?2AA=?= <ivan@flamecrm.ru>' })],
  ])('%s, to a ticket and to postmaster@', async (_name, build) => {
    for (const to of [['support+TKT-2001@flamecrm.ru'], ['postmaster@flamecrm.ru']]) {
      const message = build();
      const first = await fromStaff(message, to);
      expect(first.short, first.text).toBe('250 2.0.0');
      const again = await fromStaff(message, to);
      expect(again.short).toBe('250 2.0.0');
      expect(again.text).toMatch(/^Ok: already committed as/);
    }
    const { rows } = await db.pool.query(
      "select subject, author_name from ticket_messages union all select subject, '' from unrouted_messages",
    );
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(`${row.subject}${row.author_name}`).not.toMatch(/[\u0000\ud800-\udfff]/);
  });
});

describe('defect 7: unrouted mail has its own size limit and a daily budget per network', () => {
  it('refuses postmaster@ mail over UNROUTED_MAX_MESSAGE_BYTES with 552 5.3.4, keeping nothing past it', async () => {
    const r = await fromStaff(staffMail({ body: `${'z'.repeat(98)}\r\n`.repeat(25_000) }), ['postmaster@flamecrm.ru']);
    expect(r.short).toBe('552 5.3.4');
    expect(r.text).toContain('2097152');
  });

  it('stops one network at its daily budget; another network and ticket mail still get in', async () => {
    const limited = await startTestServer(
      db.url,
      { ...ENFORCE, UNROUTED_MAX_BYTES_PER_NETWORK_PER_DAY: '200000' },
      server.dns,
    );
    try {
      const big = () => staffMail({ body: `${'z'.repeat(98)}\r\n`.repeat(450) }); // 45 KB
      const flood: string[] = [];
      for (let i = 0; i < 6; i++)
        flood.push(
          (
            await deliver(limited.port, {
              ip: '127.0.3.1',
              from: 'x@flood.example',
              to: ['abuse@flamecrm.ru'],
              message: big(),
            })
          ).short,
        );
      expect(flood).toEqual(['250 2.0.0', '250 2.0.0', '250 2.0.0', '250 2.0.0', '450 4.7.1', '450 4.7.1']);
      // an auto-reply to a ticket is unrouted mail too
      const auto = staffMail({ headers: ['Auto-Submitted: auto-replied'], body: `${'z'.repeat(98)}\r\n`.repeat(450) });
      const r = await deliver(limited.port, {
        ip: '127.0.3.2',
        from: 'x@flood.example',
        to: ['support+TKT-2001@flamecrm.ru'],
        message: auto,
      });
      expect(r.short).toBe('450 4.7.1');
      expect(limited.logsWithCode('DATA_UNROUTED_QUOTA').at(-1)).toMatchObject({ network: '127.0.3.0/24' });
      const other = await deliver(limited.port, {
        ip: '127.0.4.1',
        from: 'x@other.example',
        to: ['abuse@flamecrm.ru'],
        message: big(),
      });
      expect(other.short).toBe('250 2.0.0');
      expect((await fromStaff(staffMail(), undefined, limited)).short).toBe('250 2.0.0');
      const { rows } = await db.pool.query(
        "select network, bytes::int from unrouted_budget where network <> '*' order by network",
      );
      expect(rows.map((x) => x.network)).toEqual(['127.0.3.0/24', '127.0.4.0/24']);
      expect(rows[0].bytes).toBeLessThanOrEqual(200_000);
      // all networks' row holds the sum
      const all = await db.pool.query("select bytes::int from unrouted_budget where network = '*'");
      expect(all.rows[0].bytes).toBe(rows[0].bytes + rows[1].bytes);
    } finally {
      await limited.close();
    }
  });

  it('stops unrouted mail from every network at UNROUTED_MAX_BYTES_PER_DAY with 452 4.3.1; ticket mail still gets in', async () => {
    // attack run 4, F-low-5: the per-network budget times 1,000 networks was 50 GB a day
    const full = await startTestServer(db.url, { ...ENFORCE, UNROUTED_MAX_BYTES_PER_DAY: '200000' }, server.dns);
    try {
      const big = () => staffMail({ body: `${'z'.repeat(98)}\r\n`.repeat(450) }); // 45 KB
      const replies: string[] = [];
      // one message from each of six networks: no network comes near its own 50 MiB
      for (let n = 0; n < 6; n++)
        replies.push(
          (
            await deliver(full.port, {
              ip: `127.0.${10 + n}.1`,
              from: 'x@flood.example',
              to: ['postmaster@flamecrm.ru'],
              message: big(),
            })
          ).text,
        );
      expect(replies.slice(0, 4).every((r) => r.startsWith('Ok'))).toBe(true);
      expect(replies.slice(4)).toEqual(
        Array(2).fill('We already keep 200000 bytes of mail that is not a ticket reply from today, try again tomorrow'),
      );
      expect(full.logsWithCode('DATA_UNROUTED_FULL').at(-1)).toMatchObject({
        reply: expect.stringMatching(/^452 4\.3\.1/),
      });
      // an auto-reply to a ticket, from yet another network, is unrouted mail too
      const auto = staffMail({ headers: ['Auto-Submitted: auto-replied'], body: `${'z'.repeat(98)}\r\n`.repeat(450) });
      const r = await deliver(full.port, {
        ip: '127.0.20.1',
        from: 'x@flood.example',
        to: ['support+TKT-2001@flamecrm.ru'],
        message: auto,
      });
      expect(r.short).toBe('452 4.3.1');
      expect((await fromStaff(staffMail(), undefined, full)).short).toBe('250 2.0.0');
      const { rows } = await db.pool.query(
        "select count(*)::int as n, (select bytes::int from unrouted_budget where network = '*') as bytes from unrouted_messages",
      );
      expect(rows[0].n).toBe(4);
      expect(rows[0].bytes).toBeLessThanOrEqual(200_000);
    } finally {
      await full.close();
    }
  });
});

describe('defect 8: error limits per session', () => {
  it('delays, then closes a session that probes 2,000 ticket numbers with 421 4.7.0', async () => {
    const probe = await startTestServer(db.url, { ...ENFORCE, SMTP_ERROR_DELAY_MS: '50' }, server.dns);
    try {
      const client = await SmtpClient.connect(probe.port);
      await client.command('EHLO probe.example');
      const started = performance.now();
      client.write(
        `MAIL FROM:<probe@example.com>\r\n${Array.from({ length: 2000 }, (_, i) => `RCPT TO:<support+TKT-${5000 + i}@flamecrm.ru>\r\n`).join('')}`,
      );
      const replies: string[] = [];
      for (;;) {
        const r = await client.next();
        if (r.code === 0) break;
        replies.push(r.short);
      }
      expect(replies[0]).toBe('250 2.1.0');
      expect(replies.slice(1, 21)).toEqual(Array(20).fill('550 5.1.1'));
      expect(replies.slice(21)).toEqual(['421 4.7.0']);
      // errors 11 to 20 each waited SMTP_ERROR_DELAY_MS before the next command
      expect(performance.now() - started).toBeGreaterThanOrEqual(9 * 50);
      expect(probe.logsWithCode('SMTP_ERRORS_DELAYED')).toHaveLength(1);
      expect(probe.logsWithCode('SMTP_TOO_MANY_ERRORS')).toHaveLength(1);
      const metrics = await (await fetch(`http://127.0.0.1:${probe.httpPort}/metrics`)).text();
      expect(metrics).toMatch(/ticketmx_smtp_error_limit_total\{limit="soft"\} 1/);
      expect(metrics).toMatch(/ticketmx_smtp_error_limit_total\{limit="hard"\} 1/);
    } finally {
      await probe.close();
    }
  });
});

describe('attack run 4, F-low-2: more MIME parts than the parser takes', () => {
  /** A staff reply: a text part "body", then `rest` (parts of the multipart/mixed "zz"). */
  const multipart = (rest: string) =>
    staffMail({
      headers: ['Content-Type: multipart/mixed; boundary="zz"'],
      body: `--zz\r\nContent-Type: text/plain\r\n\r\nbody\r\n${rest}--zz--`,
    }).replace('Content-Type: text/plain; charset=utf-8\r\n', '');
  const textParts = (n: number) => '--zz\r\nContent-Type: text/plain\r\n\r\nmore\r\n'.repeat(n);
  const attachments = (n: number) =>
    Array.from(
      { length: n },
      (_, i) =>
        `--zz\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="f${i}.bin"\r\n` +
        'Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n',
    ).join('');

  it('refuses 1001 text parts with 552 5.3.4 naming the limit, and logs the parser’s words', async () => {
    const r = await fromStaff(multipart(textParts(1001)));
    expect(r.short).toBe('552 5.3.4');
    expect(r.text).toContain('more than 1000 MIME parts');
    expect(server.logsWithCode('DATA_TOO_MANY_PARTS').at(-1)).toMatchObject({
      limit: 1000,
      err: 'more than 1000 MIME parts',
    });
    expect(await counts(db.pool)).toMatchObject({ raw: 0, tm: 0 });
  });

  it('refuses parts nested 2000 deep the same way', async () => {
    let body = '';
    for (let i = 0; i < 2000; i++) body += `--b${i}\r\nContent-Type: multipart/mixed; boundary="b${i + 1}"\r\n\r\n`;
    const message = staffMail({
      headers: ['Content-Type: multipart/mixed; boundary="b0"'],
      body: `${body}--b2000\r\nContent-Type: text/plain\r\n\r\nleaf`,
    }).replace('Content-Type: text/plain; charset=utf-8\r\n', '');
    const r = await fromStaff(message);
    expect(r.short).toBe('552 5.3.4');
    expect(r.text).toContain('more than 1000 MIME parts');
  });

  it('says when the parser refused the message, and logs its words as err', async () => {
    // a part's header block over mailsplit's 1 MB: the parser's error, not "nothing found"
    const big = `--zz\r\nContent-Type: text/plain\r\n${`X-A: ${'a'.repeat(60)}\r\n`.repeat(20_000)}\r\nx\r\n`;
    const r = await fromStaff(multipart(big));
    expect(r.short).toBe('550 5.6.0');
    expect(r.text).toBe('Message could not be decoded: its MIME structure is broken');
    expect(server.logsWithCode('DATA_UNPARSEABLE').at(-1)).toMatchObject({
      err: 'Max header size for a MIME node exceeded',
    });
  });

  it('answers 1000 attachments with the attachment limit, 60 as before, and takes 300 parts', async () => {
    const many = await fromStaff(multipart(attachments(1000)));
    expect(many.short).toBe('552 5.3.4');
    expect(many.text).toMatch(/^at least \d+ attachments, more than the limit of 50$/);
    const sixty = await fromStaff(multipart(attachments(60)));
    expect(sixty.short).toBe('552 5.3.4');
    expect(sixty.text).toBe('60 attachments, more than the limit of 50');
    const fine = await fromStaff(multipart(textParts(300)));
    expect(fine.short).toBe('250 2.0.0');
  });
});

describe('also: line endings, the greeting, WIZ', () => {
  it.each([
    ['bare LF', 'Subject: x\nX-Other: y\r\n'],
    ['bare CR', 'Subject: x\rX-Other: y\r\n'],
  ])('refuses a %s with 550 5.6.0 (not normalised)', async (which, header) => {
    const message = Buffer.from(staffMail().replace(/^Subject: [^\r]*\r\n/m, header), 'latin1');
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-2001@flamecrm.ru>');
    expect((await client.command('DATA')).code).toBe(354);
    client.write(Buffer.concat([message, Buffer.from('.\r\n')])); // raw: no CRLF normalisation on the way
    const r = await client.next();
    await client.quit();
    expect(r.short).toBe('550 5.6.0');
    expect(r.text).toContain(which);
  });

  it('says ESMTP once in the greeting, and WIZ is an unknown command', async () => {
    const client = await SmtpClient.connect(server.port);
    expect(client.greeting.lines[0]).toBe('220 mx.test.flamecrm.ru ESMTP ticket-mx');
    await client.command('EHLO x');
    expect((await client.command('WIZ password')).short).toBe('500 5.5.2');
    expect((await client.command('SHELL')).short).toBe('500 5.5.2');
    await client.quit();
  });
});
