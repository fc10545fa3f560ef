// Reply text end to end: `ticket-mx reply-text` in all its modes, a forwarded message through
// SMTP into the ticket and `ticket show`, and `ticket-mx reprocess` over messages that an older
// extractor stored.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/paths.js';
import { cleanEnv, runCli, runCliWithInput } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

const FIXTURES = path.join(PROJECT_ROOT, 'fixtures');
const QUOTE = '> Новый комментарий в заявке TKT-3001: форма не работает\n>\n> Здравствуйте!';
const FORWARD = [
  'Please look at this one.',
  '',
  '---------- Forwarded message ---------',
  'From: Anna Berg <anna@example.com>',
  'Date: Tue, Mar 4, 2025 at 10:10 AM',
  'Subject: Form',
  'To: <office@example.com>',
  '',
  'The form has stopped working.',
].join('\n');

describe('ticket-mx reply-text', () => {
  const env = cleanEnv();
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reply-text-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prints the answer of a text body from a file or standard input', async () => {
    const file = path.join(dir, 'body.txt');
    fs.writeFileSync(file, `Fixed.\n\nOn Tue, 4 Mar 2025 at 10:10, FlameCRM <notify@flamecrm.ru> wrote:\n${QUOTE}\n`);
    expect(await runCli(['reply-text', file], env)).toMatchObject({ code: 0, stdout: 'Fixed.\n' });
    const piped = await runCliWithInput(['reply-text'], env, fs.readFileSync(file, 'utf8'));
    expect(piped).toMatchObject({ code: 0, stdout: 'Fixed.\n' });
  });

  it('reads HTML with --html', async () => {
    const r = await runCliWithInput(
      ['reply-text', '--html'],
      env,
      '<div>Fixed.</div><blockquote type="cite"><div>old</div></blockquote>',
    );
    expect(r).toMatchObject({ code: 0, stdout: 'Fixed.\n' });
  });

  it('decodes a whole .eml as the DATA path does', async () => {
    const name = 'gmail-web-ru-html-top';
    const expected = fs.readFileSync(path.join(FIXTURES, 'expected', `${name}.txt`), 'utf8').trim();
    const r = await runCli(['reply-text', path.join(FIXTURES, 'eml', `${name}.eml`)], env);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(expected);
    const piped = await runCliWithInput(
      ['reply-text', '--eml', '--json'],
      env,
      fs.readFileSync(path.join(FIXTURES, 'eml', `${name}.eml`), 'latin1'),
    );
    expect(JSON.parse(piped.stdout)).toMatchObject({ reply: expected, method: 'html' });
  });

  it('--json shows a forwarded message beside the note', async () => {
    const r = await runCliWithInput(['reply-text', '--json'], env, FORWARD);
    expect(JSON.parse(r.stdout)).toEqual({
      reply: 'Please look at this one.',
      removed: expect.stringContaining('Forwarded message'),
      method: 'text',
      forwarded: {
        from: 'Anna Berg <anna@example.com>',
        date: 'Tue, Mar 4, 2025 at 10:10 AM',
        subject: 'Form',
        to: '<office@example.com>',
        text: 'The form has stopped working.',
      },
    });
  });

  it('--jsonl answers every line in order, errors included, and exits 1 when a line was bad', async () => {
    const eml = fs.readFileSync(path.join(FIXTURES, 'eml', 'thunderbird-en-text-inline.eml')).toString('base64');
    const input = [
      JSON.stringify({ text: `Fixed.\n\n-- \nIvan` }),
      JSON.stringify({ html: '<p>Да.</p><div class="gmail_quote">старое</div>' }),
      'not json',
      JSON.stringify({ eml }),
      JSON.stringify({ text: 42 }),
      JSON.stringify({ text: FORWARD }),
    ].join('\n');
    const r = await runCliWithInput(['reply-text', '--jsonl'], env, `${input}\n`);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(r.code).toBe(1);
    expect(lines).toHaveLength(6);
    expect(lines[0]).toEqual({ reply: 'Fixed.', removed: '--\nIvan', method: 'text' });
    expect(lines[1]).toEqual({ reply: 'Да.', removed: 'старое', method: 'html' });
    expect(lines[2]).toEqual({ error: expect.any(String) });
    expect(lines[3].reply).toBe(
      fs.readFileSync(path.join(FIXTURES, 'expected', 'thunderbird-en-text-inline.txt'), 'utf8').trim(),
    );
    expect(lines[4]).toEqual({ error: expect.stringContaining('"text"') });
    expect(lines[5]).toMatchObject({ reply: 'Please look at this one.', forwarded: { subject: 'Form' } });
  });

  it.each([
    [['reply-text', 'a', 'b']],
    [['reply-text', '--jsonl', 'file']],
    [['reply-text', '--html', '--eml']],
    [['reply-text', '--bogus']],
  ])('refuses %j with exit code 2', async (args) => {
    expect((await runCli(args, env)).code).toBe(2);
  });
});

describe('forwarded messages in the ticket, and reprocess', () => {
  let db: TestDatabase;
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let seq = 0;
  const send = async (ticket: string, body: string, subject = `Re: [${ticket}] Форма`) => {
    const messageId = `<reply-text-${++seq}.${process.pid}@example.com>`;
    const r = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'ivan@flamecrm.ru',
      to: [`support+${ticket}@flamecrm.ru`],
      message: buildMessage({ to: `support+${ticket}@flamecrm.ru`, subject, body, messageId }),
    });
    expect(r.short).toBe('250 2.0.0');
    const { rows } = await db.pool.query('select id from ticket_messages where message_id = $1', [messageId]);
    return rows[0].id as string;
  };
  const row = async (id: string) =>
    (
      await db.pool.query(
        'select reply_text, removed_text, forwarded, xmin::text as version from ticket_messages where id = $1',
        [id],
      )
    ).rows[0];

  beforeAll(async () => {
    db = await createTestDatabase();
    for (const id of ['TKT-3001', 'TKT-3002', 'TKT-3003']) await insertTestTicket(db.pool, id);
    server = await startTestServer(db.url, { AUTH_POLICY: 'monitor', TICKET_MAX_MESSAGES_PER_HOUR: '0' });
    env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('stores the note as the reply text and the forwarded message as data; ticket show shows both', async () => {
    const id = await send('TKT-3001', FORWARD, 'Fwd: Form');
    expect(await row(id)).toMatchObject({
      reply_text: 'Please look at this one.',
      forwarded: { from: 'Anna Berg <anna@example.com>', date: 'Tue, Mar 4, 2025 at 10:10 AM', subject: 'Form' },
    });
    const shown = await runCli(['ticket', 'show', 'TKT-3001'], env);
    expect(shown.stdout).toContain('    Please look at this one.');
    expect(shown.stdout).toContain('    forwarded from Anna Berg <anna@example.com> on Tue, Mar 4, 2025 at 10:10 AM');
    expect(shown.stdout).toContain('    | The form has stopped working.');
    const json = JSON.parse((await runCli(['ticket', 'show', 'TKT-3001', '--json'], env)).stdout);
    expect(json.messages.at(-1).forwarded).toMatchObject({ from: 'Anna Berg <anna@example.com>', subject: 'Form' });
  });

  it('a forward with no note shows the forwarded message instead of an empty answer', async () => {
    await send('TKT-3002', FORWARD.split('\n').slice(2).join('\n'), 'Fwd: Form');
    const shown = await runCli(['ticket', 'show', 'TKT-3002'], env);
    expect(shown.stdout).toMatch(/\n {4}forwarded from Anna Berg <anna@example.com> on Tue, Mar 4, 2025 at 10:10 AM\n/);
    expect(shown.stdout).toContain('    | The form has stopped working.');
  });

  it('re-extracts what an older extractor stored, keeps the old text in history, and is idempotent', async () => {
    const wrapped = await send(
      'TKT-3001',
      `Исправили.\n\nOn Tue, 4 Mar 2025 at 10:10, FlameCRM <\nnotify@flamecrm.ru> wrote:\n\n${QUOTE}`,
    );
    const forward = await send('TKT-3002', FORWARD);
    const plain = await send('TKT-3002', 'Просто ответ.');
    const current = { wrapped: await row(wrapped), forward: await row(forward), plain: await row(plain) };
    // What the extractor before this one stored for the first two: the first line of the wrapped
    // attribution left in the answer, the whole forward dropped as a quote.
    await db.pool.query('update ticket_messages set reply_text = $2, forwarded = null where id = $1', [
      wrapped,
      'Исправили.\n\nOn Tue, 4 Mar 2025 at 10:10, FlameCRM <',
    ]);
    await db.pool.query('update ticket_messages set reply_text = $2, forwarded = null where id = $1', [forward, '']);
    const untouched = (await row(plain)).version;

    const dry = await runCli(['reprocess', '--all', '--dry-run'], env);
    expect(dry.stdout).toMatch(/: 2 would change, \d+ unchanged, 0 failed/);
    expect((await row(wrapped)).reply_text).toContain('FlameCRM <');

    const first = await runCli(['reprocess', '--all'], env);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^reprocessed \d+ messages: 2 changed, \d+ unchanged, 0 failed\n$/);
    expect(first.stderr).not.toContain('\r'); // progress only on a terminal
    expect(await row(wrapped)).toMatchObject({ reply_text: 'Исправили.', removed_text: current.wrapped.removed_text });
    expect(await row(forward)).toMatchObject({
      reply_text: 'Please look at this one.',
      forwarded: current.forward.forwarded,
    });
    expect((await row(plain)).version).toBe(untouched);
    const { rows: history } = await db.pool.query(
      'select ticket_message_id::text as id, reply_text, forwarded from reply_text_history order by id',
    );
    expect(history).toEqual([
      { id: wrapped, reply_text: 'Исправили.\n\nOn Tue, 4 Mar 2025 at 10:10, FlameCRM <', forwarded: null },
      { id: forward, reply_text: '', forwarded: null },
    ]);

    const again = await runCli(['reprocess', '--all'], env);
    expect(again.stdout).toMatch(/: 0 changed, \d+ unchanged, 0 failed/);
    expect((await db.pool.query('select count(*)::int as n from reply_text_history')).rows[0].n).toBe(2);
  });

  it('limits itself to one ticket or to recent messages', async () => {
    const id = await send('TKT-3001', FORWARD);
    await db.pool.query("update ticket_messages set reply_text = 'old' where id = $1", [id]);
    const other = await runCli(['reprocess', '--ticket', 'tkt-3002'], env);
    expect(other.stdout).toMatch(/: 0 changed/);
    const future = await runCli(['reprocess', '--since', '2999-01-01'], env);
    expect(future.stdout).toBe('reprocessed 0 messages: 0 changed, 0 unchanged, 0 failed\n');
    const mine = await runCli(['reprocess', '--ticket', 'TKT-3001', '--since', '2000-01-01'], env);
    expect(mine.stdout).toMatch(/: 1 changed/);
    expect((await row(id)).reply_text).toBe('Please look at this one.');
  });

  it('reply-text and reprocess give what the pipeline stored, to the letter', async () => {
    // every client fixture, a forward, and HTML alone inside multipart/related (mailparser gives
    // no text there: the text of the HTML is ours)
    const related = [
      'From: Ivan <ivan@flamecrm.ru>',
      'To: support+TKT-3003@flamecrm.ru',
      'Subject: Re: [TKT-3003] Форма',
      'Message-ID: <reply-text-related@example.com>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/related; boundary="b"',
      '',
      '--b',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<div>Починили.</div><div class="gmail_quote"><blockquote>старое</blockquote></div>',
      '--b--',
      '',
    ].join('\r\n');
    const messages = [
      ...fs
        .readdirSync(path.join(FIXTURES, 'eml'))
        .filter((f) => f.endsWith('.eml'))
        .sort()
        .map((f) => fs.readFileSync(path.join(FIXTURES, 'eml', f))),
      Buffer.from(buildMessage({ to: 'support+TKT-3003@flamecrm.ru', subject: 'Fwd: Form', body: FORWARD })),
      Buffer.from(related),
    ];
    for (const message of messages) {
      const r = await deliver(server.port, {
        ip: '127.0.0.1',
        from: 'sender@example.ru',
        to: ['support+TKT-3003@flamecrm.ru'],
        message,
      });
      expect(r.short).toBe('250 2.0.0');
    }
    const { rows } = await db.pool.query(
      `select reply_text as reply, removed_text as removed, forwarded from ticket_messages
        where ticket_id = 'TKT-3003' order by id`,
    );
    expect(rows).toHaveLength(messages.length);
    const cli = await runCliWithInput(
      ['reply-text', '--jsonl'],
      env,
      messages.map((m) => JSON.stringify({ eml: m.toString('base64') })).join('\n'),
    );
    expect(cli.code).toBe(0);
    const answers = cli.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(answers.map((a) => ({ reply: a.reply, removed: a.removed, forwarded: a.forwarded ?? null }))).toEqual(rows);
    expect(answers.at(-1)).toMatchObject({ reply: 'Починили.', method: 'html' });
    const again = await runCli(['reprocess', '--ticket', 'TKT-3003', '--dry-run'], env);
    expect(again.stdout).toBe(
      `reprocessed ${messages.length} messages: 0 would change, ${messages.length} unchanged, 0 failed\n`,
    );
  });

  it.each([
    [['reprocess']],
    [['reprocess', '--all', '--ticket', 'TKT-3001']],
    [['reprocess', '--since', 'yesterday']],
    [['reprocess', '--ticket', 'nope']],
  ])('refuses %j with exit code 2', async (args) => {
    expect((await runCli(args, env)).code).toBe(2);
  });
});
