// Messages processed on the main thread (src/pipeline/inline.ts) rather than in a worker: which ones
// (size and shape), that they come out exactly as they do from the workers (the same reply, the
// same rows), and that the dearest shapes we know (test/helpers/dear.ts), just under the bound and
// sent alongside a normal client, leave the event loop free. The bound here is generous (a loaded
// machine must not make it flaky); the real figures are the bench's (npm run bench:steps -- --shape
// dear, npm run bench).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INLINE_SHAPE } from '../../src/pipeline/inline.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { DEAR_SHAPES, dearMessage } from '../helpers/dear.js';
import { publishDkimKey } from '../helpers/dns-server.js';
import { dkimSigned } from '../helpers/mail-auth.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

const INLINE = 'support+TKT-5001@flamecrm.ru';
const WORKERS = 'support+TKT-5002@flamecrm.ru';
const SIZE = 60 * 1024;
/** Generous: issue 9's budget is 200 ms; a loaded machine's scheduler must not fail this. */
const LOOP_BOUND_MS = 1_000;

let db: TestDatabase;
let inline: TestServer;
let workers: TestServer;
let key: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = {
    AUTH_POLICY: 'enforce',
    STAFF_SENDERS: '@flamecrm.ru',
    TICKET_MAX_MESSAGES_PER_HOUR: '0',
    OUTBOX_SEND_IN_SERVE: 'false',
  };
  inline = await startTestServer(db.url, { ...env, LOG_LEVEL: 'info' });
  workers = await startTestServer(db.url, { ...env, LOG_LEVEL: 'info', PIPELINE_INLINE_MAX_BYTES: '0' }, inline.dns);
  key = publishDkimKey(inline.dns, 'flamecrm.ru', 'mail');
  await insertTestTicket(db.pool, 'TKT-5001', 'client@example.ru');
  await insertTestTicket(db.pool, 'TKT-5002', 'client@example.ru');
}, 60_000);

afterAll(async () => {
  await workers?.close();
  await inline?.close();
  await db?.drop();
});

const send = async (server: TestServer, to: string, message: Buffer) => {
  const r = await deliver(server.port, { from: 'ivan@flamecrm.ru', to: [to], message });
  // this message's line, not one of the normal client's sent alongside (its replies name other ids)
  const line = server.logs
    .filter((l) => String(l.code).startsWith('DATA_') && l.reply === `${r.short} ${r.text}`)
    .at(-1)!;
  return { reply: r.short, path: line.path, code: line.code };
};
const signed = (m: Buffer | string) => dkimSigned(m, 'flamecrm.ru', 'mail', key);
const htmlMessage = (html: string, to = INLINE, messageId?: string) =>
  buildMessage({ to, ...(messageId ? { messageId } : {}) }).replace(
    'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe printer works again.\r\n',
    `Content-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n`,
  );
/** A body sent base64, as Gmail and Mail.ru send Cyrillic text: its lines only show once decoded. */
const base64Message = (type: 'text/plain' | 'text/html', body: string) =>
  buildMessage({ to: INLINE }).replace(
    'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe printer works again.\r\n',
    `Content-Type: ${type}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(body)
      .toString('base64')
      .replace(/.{76}/g, '$&\r\n')}\r\n`,
  );
/** An address list of at least `bytes`, four addresses a line (MAX_HEADER_LINES allows 1000). */
const ccList = (bytes: number) =>
  'anna.berg@flamecrm.ru, '
    .repeat(4)
    .replace(/ $/, '\r\n ')
    .repeat(Math.ceil(bytes / 94))
    .concat('z@flamecrm.ru');

describe('which messages run on the main thread', () => {
  it.each([
    ['a small reply', () => buildMessage({ to: INLINE, body: 'Готово.' }), 'inline'],
    [
      'a message over PIPELINE_INLINE_MAX_BYTES',
      () => buildMessage({ to: INLINE, body: 'x'.repeat(70_000) }),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.lines} lines`,
      () => buildMessage({ to: INLINE, body: 'x\r\n'.repeat(INLINE_SHAPE.lines + 1) }),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.boundaries} MIME boundaries`,
      () =>
        buildMessage({ to: INLINE, body: '' }).replace(
          'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
          `Content-Type: multipart/mixed; boundary="p"\r\n\r\n${'--p\r\nContent-Type: text/plain\r\n\r\nx\r\n'.repeat(INLINE_SHAPE.boundaries)}--p--\r\n`,
        ),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.signatures} signatures`,
      () =>
        buildMessage({
          to: INLINE,
          headers: Array.from({ length: INLINE_SHAPE.signatures }, (_, k) => `ARC-Seal: i=${k + 1}; a=rsa-sha256`),
        }),
      'worker',
    ],
    [
      `just under ${INLINE_SHAPE.tags} tags`,
      () => htmlMessage(`<table><tr>${'<td>x'.repeat(INLINE_SHAPE.tags - 100)}`),
      'inline',
    ],
    [
      `more than ${INLINE_SHAPE.tags} tags (the attack run's table row)`,
      () => htmlMessage(`<table><tr>${'<td>x'.repeat(INLINE_SHAPE.tags + 1)}`),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.addressBytes} bytes of addresses`,
      () => buildMessage({ to: INLINE, headers: [`Cc: ${ccList(INLINE_SHAPE.addressBytes)}`] }),
      'worker',
    ],
    [
      `${INLINE_SHAPE.colonLines} lines ending with a colon`,
      () => buildMessage({ to: INLINE, body: 'Кому:\r\nok\r\n'.repeat(INLINE_SHAPE.colonLines) }),
      'inline',
    ],
    [
      `more than ${INLINE_SHAPE.colonLines} lines ending with a colon (Outlook's quoted fields, attack run 4)`,
      () =>
        buildMessage({
          to: INLINE,
          body: Array.from(
            { length: INLINE_SHAPE.colonLines + 1 },
            (_, i) => `От: Имя <a${i}@b.ru> Отправлено: 27 января 2012 г. Кому: \r\n`,
          ).join(''),
        }),
      'worker',
    ],
    ['a reply sent base64', () => base64Message('text/plain', 'Готово, принтер снова печатает.\n\nИван:\n'), 'inline'],
    [
      `more than ${INLINE_SHAPE.lines} lines once decoded (a base64 body)`,
      () => base64Message('text/plain', 'x\n'.repeat(INLINE_SHAPE.lines + 1)),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.colonLines} lines ending with a colon in a base64 <pre> (attack run 5)`,
      () => base64Message('text/html', `<p>Answer</p><pre>${'a:\n'.repeat(INLINE_SHAPE.colonLines + 1)}</pre>`),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.colonLines} lines ending with a colon and a no-break or zero-width space`,
      () =>
        buildMessage({
          to: INLINE,
          body: Array.from(
            { length: INLINE_SHAPE.colonLines + 1 },
            (_, i) => `a${i}:${i % 2 ? '\u00a0' : '\u200b'}\r\n`,
          ).join(''),
        }),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.colonLines} colons before a tag in HTML ("a:&nbsp;<br>")`,
      () => htmlMessage('a:&nbsp;<br>'.repeat(INLINE_SHAPE.colonLines + 1)),
      'worker',
    ],
    // counted on the lines the reply text reads, whatever made them (attack run 5, second pass)
    [
      `more than ${INLINE_SHAPE.colonLines} lines ending with a colon in a <pre> by "&#10;"`,
      () => htmlMessage(`<pre>${'a:&#10;'.repeat(INLINE_SHAPE.colonLines + 1)}</pre>`),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.lines} lines by a lone CR in a base64 body`,
      () => base64Message('text/plain', `Answer\r\r${'<\r'.repeat(INLINE_SHAPE.lines + 1)}`),
      'worker',
    ],
    [
      `more than ${INLINE_SHAPE.lines} lines by <br>, under ${INLINE_SHAPE.tags} tags`,
      () => htmlMessage('From: a<br>'.repeat(INLINE_SHAPE.lines + 1)),
      'worker',
    ],
  ])('%s', async (_name, make, path) => {
    const r = await send(inline, INLINE, await signed(make()));
    expect(r).toMatchObject({ reply: '250 2.0.0', path });
  });

  it('none with PIPELINE_INLINE_MAX_BYTES=0', async () => {
    const r = await send(workers, WORKERS, await signed(buildMessage({ to: WORKERS, body: 'Готово.' })));
    expect(r).toMatchObject({ reply: '250 2.0.0', path: 'worker' });
  });
});

describe('the dearest shapes we know, just under the bound', () => {
  it(`come out as from the workers, and leave the event loop free (held < ${LOOP_BOUND_MS} ms)`, async () => {
    const seen: string[] = [];
    const held: string[] = [];
    const loop = monitorEventLoopDelay({ resolution: 5 });
    let done = false;
    // a normal client alongside, as in the fuzz test
    const normal: number[] = [];
    let failed: unknown = null;
    const client = (async () => {
      for (let i = 0; !done && !failed; i++) {
        const started = performance.now();
        const r = await deliver(inline.port, {
          from: 'ivan@flamecrm.ru',
          to: [INLINE],
          message: await signed(buildMessage({ to: INLINE, messageId: `<normal-${i}@x>`, body: 'Готово.' })),
        });
        if (r.short !== '250 2.0.0') failed = r.short;
        normal.push(performance.now() - started);
        await new Promise((w) => setTimeout(w, 50));
      }
    })().catch((err: unknown) => {
      failed = err;
    });
    try {
      for (const shape of DEAR_SHAPES) {
        const a = await signed(dearMessage(shape, SIZE, INLINE));
        const b = await signed(dearMessage(shape, SIZE, WORKERS));
        const one = monitorEventLoopDelay({ resolution: 5 });
        one.enable();
        loop.enable();
        const here = await send(inline, INLINE, a);
        loop.disable();
        one.disable();
        held.push(`${shape} ${(one.max / 1e6).toFixed(0)}`);
        const there = await send(workers, WORKERS, b);
        expect({ shape, path: there.path, code: there.code }).toMatchObject({ shape, path: 'worker' });
        expect({ shape, reply: here.reply, code: here.code }).toEqual({ shape, reply: there.reply, code: there.code });
        seen.push(`${shape} ${here.path} ${here.reply}`);
      }
    } finally {
      done = true;
    }
    await client;
    expect(failed).toBeNull();
    console.log(held.join(', '));
    console.log(
      `inline: ${seen.join(', ')}; event loop held at most ${(loop.max / 1e6).toFixed(0)} ms (server, clients ` +
        `and DNS share it); normal client worst ${Math.round(Math.max(...normal))} ms`,
    );
    // half of them are within the shape's bounds at this size; the HTML ones that are not go by their
    // tags (base64-html and base64-flat-html by those counted decoded), the ones of lines ending with
    // a colon by those (colon-lines, long-verb-lines, ru-header-fields)
    expect(seen.filter((s) => s.includes(' inline ')).map((s) => s.split(' ')[0])).toEqual([
      'folded-header',
      'wide-html',
      'verb-lines',
      'address-lines',
      'date-lines',
      'quoted',
      'encoded-words',
      'base64',
      'long-line',
      'html-entities',
      'ru-openers',
    ]);
    expect(loop.max / 1e6).toBeLessThan(LOOP_BOUND_MS);

    // the same rows, whichever thread made them
    const rows = await db.pool.query<{ ticket_id: string; message_id: string; row: Record<string, unknown> }>(
      `select ticket_id, message_id, to_jsonb(m) - 'id' - 'ticket_id' - 'raw_message_id' - 'received_at'
              - 'idempotency_key' - 'rcpt_to' - 'auth_header' - 'auth_results' as row
         from ticket_messages m where message_id like '<dear-%'`,
    );
    const by = (ticket: string) =>
      new Map(rows.rows.filter((r) => r.ticket_id === ticket).map((r) => [r.message_id, r.row]));
    const here = by('TKT-5001');
    const there = by('TKT-5002');
    expect(here.size).toBeGreaterThan(0);
    expect([...here.keys()].sort()).toEqual([...there.keys()].sort());
    for (const [id, row] of here) expect({ id, ...row }).toEqual({ id, ...there.get(id) });
  }, 300_000);
});

describe("the attack run's messages go to the workers", () => {
  it(`20 table rows of 63 KB at once and a 63 KB From list leave the event loop free (held < ${LOOP_BOUND_MS} ms)`, async () => {
    const rows = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        signed(htmlMessage(`<table><tr>${'<td>x'.repeat(12_500)}`, INLINE, `<attack-row-${i}@x>`)),
      ),
    );
    // a stranger's list of authors: refused on what the header says (AUTH_MULTIPLE_AUTHORS)
    const authors = buildMessage({ to: INLINE, from: ccList(63_000), messageId: '<attack-authors@x>' });
    expect(rows[0]!.length).toBeGreaterThan(62_000);
    expect(rows[0]!.length).toBeLessThan(64 * 1024);
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const replies = await Promise.all([
      ...rows.map((m) => deliver(inline.port, { from: 'ivan@flamecrm.ru', to: [INLINE], message: m })),
      deliver(inline.port, { ip: '127.0.2.1', from: 'x@example.com', to: [INLINE], message: authors }),
      deliver(inline.port, {
        ip: '127.0.1.1',
        from: 'ivan@flamecrm.ru',
        to: [INLINE],
        message: await signed(buildMessage({ to: INLINE, messageId: '<attack-normal@x>', body: 'Готово.' })),
      }),
    ]);
    loop.disable();
    const held = loop.max / 1e6;
    console.log(`20 table rows, a From list and a normal reply at once: event loop held at most ${held.toFixed(0)} ms`);
    const lineOf = (id: string) => inline.logs.find((l) => String(l.code).startsWith('DATA_') && l.messageId === id);
    expect(replies.map((r) => r.short)).toEqual([...rows.map(() => '250 2.0.0'), '550 5.7.1', '250 2.0.0']);
    for (let i = 0; i < rows.length; i++) expect(lineOf(`<attack-row-${i}@x>`)).toMatchObject({ path: 'worker' });
    expect(lineOf('<attack-authors@x>')).toMatchObject({ path: 'worker', auth: 'AUTH_MULTIPLE_AUTHORS' });
    expect(lineOf('<attack-normal@x>')).toMatchObject({ path: 'inline' });
    expect(held).toBeLessThan(LOOP_BOUND_MS);
  }, 120_000);
});
