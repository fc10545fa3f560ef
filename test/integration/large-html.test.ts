// Large HTML bodies: their text costs time linear in their size (src/mail/html/text.ts), and reply
// extraction is given the first REPLY_INPUT_MAX_CHARS of the text and the HTML (src/mail/reply-text/message.ts)
// while the full text, the stored HTML and the raw bytes are kept whole. Real server, real PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPLY_INPUT_MAX_CHARS } from '../../src/mail/reply-text/message.js';
import { MAX_HTML_LENGTH } from '../../src/mail/sanitize.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

const TO = 'support+TKT-6101@flamecrm.ru';

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, {
    STAFF_SENDERS: '@flamecrm.ru',
    TICKET_MAX_MESSAGES_PER_HOUR: '0',
    OUTBOX_SEND_IN_SERVE: 'false',
    LOG_LEVEL: 'info',
  });
  await insertTestTicket(db.pool, 'TKT-6101', 'client@example.ru');
}, 60_000);

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const htmlMessage = (messageId: string, html: string) =>
  buildMessage({ to: TO, messageId }).replace(
    'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe printer works again.\r\n',
    `Content-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n`,
  );

const stored = async (messageId: string) =>
  (
    await db.pool.query<{ reply_text: string; full_text: string; html: string; bytes: Buffer }>(
      `select m.reply_text, m.full_text, m.html, r.bytes
         from ticket_messages m join raw_messages r on r.id = m.raw_message_id where m.message_id = $1`,
      [messageId],
    )
  ).rows[0]!;

describe('large HTML', () => {
  it('a 2 MB table row (one line of 400,000 cells) is stored within the CPU limit', async () => {
    // 2 MB of HTML took about 400 s of CPU when its text was quadratic in a line's length: 550 5.6.0
    const r = await deliver(server.port, {
      from: 'ivan@flamecrm.ru',
      to: [TO],
      message: htmlMessage('<table-row@x>', `<table><tr>${'<td>x'.repeat(400_000)}`),
    });
    expect(r.short).toBe('250 2.0.0');
    const line = server.logs.find((l) => l.code === 'DATA_COMMITTED' && l.messageId === '<table-row@x>');
    expect(line).toMatchObject({ path: 'worker', replyInputCut: true });
    console.log(`2 MB table row: ${line!.cpuMs} ms of worker CPU`);
    const row = await stored('<table-row@x>');
    expect(row.full_text.length).toBe(400_000 * 2 - 1);
    expect(row.reply_text.length).toBeLessThanOrEqual(REPLY_INPUT_MAX_CHARS);
  }, 60_000);

  it('the reply is taken from the first REPLY_INPUT_MAX_CHARS; full text, HTML and raw bytes stay whole', async () => {
    const report = Array.from({ length: 12_000 }, (_, i) => `<p>Строка отчёта ${i}: всё в порядке.</p>`).join('\r\n');
    const quote = '<div id="divRplyFwdMsg"><b>From:</b> FlameCRM</div><div>Исходное письмо: принтер горит.</div>';
    const html = `<p>Готово, отчёт ниже.</p>\r\n${report}\r\n${quote}`;
    expect(html.length).toBeGreaterThan(REPLY_INPUT_MAX_CHARS * 1.5);
    const message = htmlMessage('<long-report@x>', html);
    const r = await deliver(server.port, { from: 'ivan@flamecrm.ru', to: [TO], message });
    expect(r.short).toBe('250 2.0.0');
    const line = server.logs.find((l) => l.code === 'DATA_COMMITTED' && l.messageId === '<long-report@x>');
    expect(line).toMatchObject({ replyInputCut: true });
    const row = await stored('<long-report@x>');
    expect(row.bytes.equals(Buffer.from(message))).toBe(true);
    expect(row.full_text).toContain('Строка отчёта 11999: всё в порядке.');
    expect(row.full_text).toContain('Исходное письмо: принтер горит.');
    expect(row.html).toContain('Исходное письмо: принтер горит.');
    // the answer and the report up to the cut; the quote past it is not seen by the extraction
    expect(row.reply_text.startsWith('Готово, отчёт ниже.')).toBe(true);
    expect(row.reply_text.length).toBeLessThanOrEqual(REPLY_INPUT_MAX_CHARS);
    expect(row.reply_text.length).toBeGreaterThan(REPLY_INPUT_MAX_CHARS / 4);
    expect(row.reply_text).not.toContain('Строка отчёта 11999');
  }, 60_000);

  it('HTML-only over MAX_HTML_LENGTH: its text and its stored HTML come from the tag strip, never empty', async () => {
    const lines = Array.from({ length: 60_000 }, (_, i) => `<p>Line ${i} of the <b>log</b> &amp; more.</p>`);
    const html = `<p>See the log below.</p>\r\n${lines.join('\r\n')}`;
    expect(html.length).toBeGreaterThan(MAX_HTML_LENGTH);
    const r = await deliver(server.port, {
      from: 'ivan@flamecrm.ru',
      to: [TO],
      message: htmlMessage('<over@x>', html),
    });
    expect(r.short).toBe('250 2.0.0');
    const row = await stored('<over@x>');
    expect(row.full_text.startsWith('See the log below.')).toBe(true);
    expect(row.full_text).toContain('Line 59999 of the log & more.');
    expect(row.html.startsWith('<pre>See the log below.')).toBe(true);
    expect(row.html).toContain('Line 59999 of the log &amp; more.');
    expect(row.html).not.toContain('<p>');
    expect(row.reply_text.startsWith('See the log below.')).toBe(true);
  }, 60_000);

  it('flat HTML of 250,000 elements (1.9 MB, under MAX_HTML_LENGTH) is stored as its text, in well under the CPU it took', async () => {
    // attack run 4, F-med-2: one deep, so the nesting cap never fired: 1.7 s of worker CPU, +224 MB
    const html = '<b>x</b>'.repeat(250_000);
    expect(html.length).toBeLessThan(MAX_HTML_LENGTH);
    const r = await deliver(server.port, {
      from: 'ivan@flamecrm.ru',
      to: [TO],
      message: htmlMessage('<flat@x>', html),
    });
    expect(r.short).toBe('250 2.0.0');
    const line = server.logs.find((l) => l.code === 'DATA_COMMITTED' && l.messageId === '<flat@x>');
    expect(line).toMatchObject({ path: 'worker' });
    console.log(`2 MB of <b>x</b>: ${line!.cpuMs} ms of worker CPU`);
    // generous: about 0.3 s since the element cap (src/mail/html/tree.ts MAX_HTML_ELEMENTS)
    expect(line!.cpuMs).toBeLessThan(3_000);
    const row = await stored('<flat@x>');
    expect(row.full_text).toBe(Array(250_000).fill('x').join(' '));
    expect(row.html.startsWith('<pre>x x x')).toBe(true);
    expect(row.html).not.toContain('<b>');
    expect(row.reply_text.startsWith('x x x')).toBe(true);
  }, 60_000);

  it('a message under the bound is extracted whole, as before', async () => {
    const html = `<p>Готово.</p><div id="divRplyFwdMsg"><b>From:</b> FlameCRM</div><div>Исходное письмо.</div>`;
    const r = await deliver(server.port, {
      from: 'ivan@flamecrm.ru',
      to: [TO],
      message: htmlMessage('<short@x>', html),
    });
    expect(r.short).toBe('250 2.0.0');
    const line = server.logs.find((l) => l.code === 'DATA_COMMITTED' && l.messageId === '<short@x>');
    expect(line).not.toHaveProperty('replyInputCut');
    expect((await stored('<short@x>')).reply_text).toBe('Готово.');
  });
});
