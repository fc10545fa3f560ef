// The HTTP API against a real ticket-mx and PostgreSQL over real HTTP: bearer auth, every refusal
// as an exact problem document, the read endpoints in the shape of `ticket show --json`, and the
// OpenAPI document (valid, every route listed); METRICS_TOKEN and OPENAPI_PUBLIC=false.
import net from 'node:net';
import { validate } from '@readme/openapi-parser';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEMS, problemType } from '../../src/api/problems.js';
import { cleanEnv, runCli, runCliWithInput } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const TOKEN = `tmx_${'a'.repeat(40)}`;
let db: TestDatabase;
let server: TestServer;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, {
    API_TOKEN: TOKEN,
    API_MAX_BODY_BYTES: '4096',
    NOTIFY_STAFF_TO: 'info@flamecrm.ru',
  });
  base = `http://127.0.0.1:${server.httpPort}`;
  await insertTestTicket(db.pool, 'TKT-100', 'client@example.ru', 'Printer on fire');
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const auth = { authorization: `Bearer ${TOKEN}` };

async function call(method: string, path: string, init: { headers?: Record<string, string>; body?: string } = {}) {
  const res = await fetch(`${base}${path}`, { method, headers: { ...auth, ...init.headers }, body: init.body });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), headers: res.headers, text, json: parse(text) };
}

const parse = (text: string) => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/** The problem document of a refusal, with the parts every one of them has checked. */
function expectProblem(r: Awaited<ReturnType<typeof call>>, code: keyof typeof PROBLEMS, instance: string) {
  expect(r.type).toBe('application/problem+json; charset=utf-8');
  expect(r.status).toBe(PROBLEMS[code].status);
  expect(r.json).toMatchObject({
    type: problemType(code),
    title: PROBLEMS[code].title,
    status: PROBLEMS[code].status,
    code,
    instance,
    detail: expect.any(String),
    requestId: expect.stringMatching(/^[0-9a-f]{12}$/),
  });
  return r.json as { detail: string; requestId: string; errors?: { path: string; message: string }[] };
}

describe('bearer token', () => {
  it('refuses a request without a token: 401 TOKEN_MISSING with WWW-Authenticate', async () => {
    const r = await call('GET', '/v1/tickets/TKT-100', { headers: { authorization: '' } });
    expectProblem(r, 'TOKEN_MISSING', '/v1/tickets/TKT-100');
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="ticket-mx"');
  });

  it('refuses a wrong token, one of another length, and Basic auth', async () => {
    for (const authorization of [`Bearer ${'b'.repeat(44)}`, 'Bearer short', `Bearer ${TOKEN}x`]) {
      const r = await call('GET', '/v1/tickets/TKT-100', { headers: { authorization } });
      expectProblem(r, 'TOKEN_INVALID', '/v1/tickets/TKT-100');
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="ticket-mx", error="invalid_token"');
    }
    const basic = await call('GET', '/v1/tickets/TKT-100', {
      headers: { authorization: `Basic ${btoa(`x:${TOKEN}`)}` },
    });
    expectProblem(basic, 'TOKEN_MISSING', '/v1/tickets/TKT-100');
  });

  it('checks the token before reading the body: bad JSON without a token is 401', async () => {
    const r = await call('POST', '/v1/tickets', {
      headers: { authorization: '', 'content-type': 'application/json' },
      body: '{nope',
    });
    expectProblem(r, 'TOKEN_MISSING', '/v1/tickets');
  });

  it('logs one API_REQUEST line per request, with the problem and the request id', async () => {
    const r = await call('GET', '/v1/tickets/TKT-100', { headers: { authorization: 'Bearer wrong' } });
    const { requestId } = r.json as { requestId: string };
    await expect.poll(() => server.logsWithCode('API_REQUEST').filter((l) => l.rid === requestId)).toHaveLength(1);
    expect(server.logsWithCode('API_REQUEST').filter((l) => l.rid === requestId)).toEqual([
      expect.objectContaining({
        method: 'GET',
        route: '/v1/tickets/:id',
        status: 401,
        problem: 'TOKEN_INVALID',
        ms: expect.any(Number),
      }),
    ]);
    expect(JSON.stringify(server.logs)).not.toContain(TOKEN);
  });
});

describe('GET /v1/tickets/{id}', () => {
  it('answers the same JSON as ticket show --json, with full=true as --full', async () => {
    await nodemailer
      .createTransport({ host: '127.0.0.1', port: server.port, secure: false, ignoreTLS: true })
      .sendMail({
        from: 'client@example.ru',
        to: 'support+TKT-100@flamecrm.ru',
        subject: 'Re: Printer on fire',
        text: 'It is still burning.\n\n> earlier text',
        messageId: '<api-read@example.ru>',
      });
    // the staff notification it queued is part of the document: let the sender finish with it first
    await expect
      .poll(async () => (await db.pool.query("select status from outbox where ticket_id = 'TKT-100'")).rows)
      .toEqual([{ status: 'sent' }]);
    for (const [query, flag] of [
      ['', []],
      ['?full=true', ['--full']],
    ] as const) {
      const r = await call('GET', `/v1/tickets/tkt-100${query}`);
      expect(r.status).toBe(200);
      expect(r.type).toBe('application/json; charset=utf-8');
      const cli = await runCli(
        ['ticket', 'show', 'TKT-100', '--json', ...flag],
        cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' }),
      );
      expect(cli.code).toBe(0);
      expect(r.json).toEqual(JSON.parse(cli.stdout));
    }
    const r = await call('GET', '/v1/tickets/TKT-100?full=true');
    expect(r.json.ticket).toMatchObject({ id: 'TKT-100', subject: 'Printer on fire', requester: 'client@example.ru' });
    expect(r.json.messages).toEqual([
      expect.objectContaining({
        from: 'client@example.ru',
        role: 'requester',
        text: 'It is still burning.',
        fullText: expect.stringContaining('> earlier text'),
        messageId: '<api-read@example.ru>',
      }),
    ]);
  });

  it('unknown ticket: 404 TICKET_NOT_FOUND', async () => {
    const r = await call('GET', '/v1/tickets/TKT-404');
    expect(expectProblem(r, 'TICKET_NOT_FOUND', '/v1/tickets/TKT-404').detail).toBe('No such ticket TKT-404.');
  });

  it('a malformed id or query: 422 VALIDATION_FAILED naming each parameter', async () => {
    const r = await call('GET', '/v1/tickets/12345?full=maybe');
    const p = expectProblem(r, 'VALIDATION_FAILED', '/v1/tickets/12345?full=maybe');
    expect(p.errors).toEqual([{ path: 'params.id', message: 'must be a ticket id such as TKT-12345' }]);
    const q = expectProblem(
      await call('GET', '/v1/tickets/TKT-100?full=maybe'),
      'VALIDATION_FAILED',
      '/v1/tickets/TKT-100?full=maybe',
    );
    expect(q.errors).toEqual([{ path: 'querystring.full', message: expect.any(String) }]);
  });

  it('an unknown route: 404 NOT_FOUND (and 401 first without a token)', async () => {
    expectProblem(await call('GET', '/v1/nothing'), 'NOT_FOUND', '/v1/nothing');
    expectProblem(await call('DELETE', '/v1/tickets/TKT-100'), 'NOT_FOUND', '/v1/tickets/TKT-100');
    expectProblem(await call('GET', '/v1/nothing', { headers: { authorization: '' } }), 'TOKEN_MISSING', '/v1/nothing');
  });

  it('a URL the router cannot read: 400 BAD_REQUEST (and plain text outside /v1)', async () => {
    expectProblem(await call('GET', '/v1/tickets/%zz'), 'BAD_REQUEST', '/v1/tickets/%zz');
    expectProblem(
      await call('GET', `/v1/tickets/TKT-${'1'.repeat(300)}`),
      'BAD_REQUEST',
      `/v1/tickets/TKT-${'1'.repeat(300)}`,
    );
    const other = await fetch(`${base}/healthz%zz`);
    expect([other.status, other.headers.get('content-type')]).toEqual([400, 'text/plain; charset=utf-8']);
  });
});

describe('GET /v1/tickets/{id}/messages', () => {
  it('pages by id: after, limit, next and more', async () => {
    await insertTestTicket(db.pool, 'TKT-200');
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: server.port,
      secure: false,
      ignoreTLS: true,
    });
    for (const n of [1, 2, 3])
      await transport.sendMail({
        from: 'client@example.ru',
        to: 'support+TKT-200@flamecrm.ru',
        subject: `poll ${n}`,
        text: `message ${n}`,
      });
    const all = await call('GET', '/v1/tickets/TKT-200/messages');
    expect(all.status).toBe(200);
    expect(all.json.messages.map((m: { text: string }) => m.text)).toEqual(['message 1', 'message 2', 'message 3']);
    expect(all.json.more).toBe(false);
    const ids: string[] = all.json.messages.map((m: { id: string }) => m.id);
    expect(all.json.next).toBe(ids[2]);

    const first = await call('GET', '/v1/tickets/TKT-200/messages?limit=2');
    expect(first.json.messages.map((m: { id: string }) => m.id)).toEqual(ids.slice(0, 2));
    expect(first.json).toMatchObject({ next: ids[1], more: true });
    const rest = await call('GET', `/v1/tickets/TKT-200/messages?after=${first.json.next}&limit=2`);
    expect(rest.json).toEqual({ messages: [all.json.messages[2]], next: ids[2], more: false });
    const none = await call('GET', `/v1/tickets/TKT-200/messages?after=${ids[2]}`);
    expect(none.json).toEqual({ messages: [], next: ids[2], more: false });
  });

  it('refuses a bad after or limit, and an unknown ticket', async () => {
    const p = expectProblem(
      await call('GET', '/v1/tickets/TKT-200/messages?after=-1&limit=5000'),
      'VALIDATION_FAILED',
      '/v1/tickets/TKT-200/messages?after=-1&limit=5000',
    );
    expect(p.errors?.map((e) => e.path)).toEqual(['querystring.after', 'querystring.limit']);
    // not digits at all: refused as such, not a 500 from the bigint check
    for (const path of ['/v1/tickets/TKT-200/messages?after=x', '/v1/tickets/TKT-200/messages/abc'])
      expect(expectProblem(await call('GET', path), 'VALIDATION_FAILED', path).errors).toHaveLength(1);
    expectProblem(
      await call('GET', '/v1/tickets/TKT-999/messages'),
      'TICKET_NOT_FOUND',
      '/v1/tickets/TKT-999/messages',
    );
  });
});

describe('bounded reads', () => {
  // 8 messages of ~3 MB each (Cyrillic, 2 bytes a character; a control character every 1000, 6 bytes as
  // JSON): unbounded, GET ?full=true answered every byte of each (the attack run's 79.5 MB)
  const CHARS = 1_500_000;
  const ids: string[] = [];
  beforeAll(async () => {
    await insertTestTicket(db.pool, 'TKT-56', 'client@example.ru', 'Huge');
    for (let n = 0; n < 8; n++) {
      const { rows } = await db.pool.query<{ id: string }>(
        `insert into ticket_messages (ticket_id, idempotency_key, source, author_address, author_role, subject,
                                      reply_text, full_text, removed_text, html, forwarded, rcpt_to)
         select 'TKT-56', 'huge-' || $1::int, 'api', 'anna@flamecrm.ru', 'staff', 'huge', t, t || 'quoted', t,
                '<p>' || t, jsonb_build_object('from', 'x@y', 'date', null, 'subject', null, 'to', null, 'text', t), '{}'
           from (select $1::int || repeat(repeat('я', 999) || chr(1), $2 / 1000) || 'end' as t) s
         returning id`,
        [n, CHARS],
      );
      ids.push(rows[0]!.id);
    }
  });

  const bytes = (r: { text: string }) => Buffer.byteLength(r.text);

  it('GET /v1/tickets/{id}?full=true: texts cut and listed in truncated, messages stopped before 4 MiB', async () => {
    const r = await call('GET', '/v1/tickets/TKT-56?full=true');
    expect(r.status).toBe(200);
    expect(bytes(r)).toBeLessThan(4.5 * 1024 * 1024);
    const messages = r.json.messages as Record<string, unknown>[];
    expect(messages.length).toBeGreaterThan(1);
    expect(messages.length).toBeLessThan(8);
    expect(r.json).toMatchObject({ messagesMore: true, messagesNext: messages.at(-1)!.id });
    for (const m of messages) {
      expect(m.truncated).toEqual(['text', 'fullText', 'removedText', 'html', 'forwardedText']);
      for (const field of ['text', 'fullText', 'removedText', 'html'])
        expect([...(m[field] as string)]).toHaveLength(65_536);
      expect([...(m.forwarded as { text: string }).text]).toHaveLength(65_536);
    }
    const brief = await call('GET', '/v1/tickets/TKT-56');
    expect(bytes(brief)).toBeLessThan(4.5 * 1024 * 1024);
    expect(brief.json.messages[0].truncated).toEqual(['text', 'forwardedText']);
    expect(brief.json.messages[0]).not.toHaveProperty('fullText');
  });

  it('GET …/messages?limit=1000&full=true pages by the size cap; following next returns every message once', async () => {
    const seen: string[] = [];
    let after = '0';
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(6);
      const r = await call('GET', `/v1/tickets/TKT-56/messages?limit=1000&full=true&after=${after}`);
      expect(r.status).toBe(200);
      expect(bytes(r)).toBeLessThan(4.5 * 1024 * 1024);
      seen.push(...r.json.messages.map((m: { id: string }) => m.id));
      after = r.json.next;
      if (!r.json.more) break;
      expect(r.json.messages.length).toBeGreaterThan(0);
    }
    expect(seen).toEqual(ids);
  });

  it('GET …/messages/{messageId} and …/{field}: each text whole, piece by piece, by character offsets', async () => {
    const one = await call('GET', `/v1/tickets/TKT-56/messages/${ids[2]}`);
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({
      id: ids[2],
      truncated: ['text', 'fullText', 'removedText', 'html', 'forwardedText'],
    });
    const expected = (await db.pool.query('select full_text from ticket_messages where id = $1', [ids[2]])).rows[0]
      .full_text as string;
    let whole = '';
    let offset: number | null = 0;
    for (let pieces = 0; offset !== null; pieces++) {
      expect(pieces).toBeLessThan(5);
      const r = await call('GET', `/v1/tickets/TKT-56/messages/${ids[2]}/fullText?offset=${offset}`);
      expect(r.status).toBe(200);
      expect(bytes(r)).toBeLessThan(4 * 1024 * 1024);
      expect(r.json).toMatchObject({ messageId: ids[2], field: 'fullText', offset, length: [...expected].length });
      whole += r.json.text;
      offset = r.json.next;
    }
    expect(whole).toBe(expected);
    const past = await call('GET', `/v1/tickets/TKT-56/messages/${ids[2]}/html?offset=99999999`);
    expect(past.json).toMatchObject({ text: '', next: null, length: CHARS + 7 });
    expectProblem(
      await call('GET', `/v1/tickets/TKT-100/messages/${ids[2]}`),
      'MESSAGE_NOT_FOUND',
      `/v1/tickets/TKT-100/messages/${ids[2]}`,
    );
    expectProblem(
      await call('GET', `/v1/tickets/TKT-999/messages/${ids[2]}/text`),
      'TICKET_NOT_FOUND',
      `/v1/tickets/TKT-999/messages/${ids[2]}/text`,
    );
    const bad = await call('GET', `/v1/tickets/TKT-56/messages/${ids[2]}/bytes?offset=-1`);
    expect(
      expectProblem(bad, 'VALIDATION_FAILED', `/v1/tickets/TKT-56/messages/${ids[2]}/bytes?offset=-1`).errors?.map(
        (e) => e.path,
      ),
    ).toEqual(['params.field']);
  });
});

describe('bounded header fields, notifications and refusals', () => {
  // one message whose header fields alone (~1.2 MB each as JSON) passed the 4 MiB page bound, a ticket
  // with 1,500 outbox rows and 1,200 refusals, and one with refusals of 200 KB each
  const CHARS = 300_000;
  const REFS = 20_000;
  let messageId: string;
  beforeAll(async () => {
    await insertTestTicket(db.pool, 'TKT-57', 'client@example.ru', 'Huge headers');
    await insertTestTicket(db.pool, 'TKT-58', 'client@example.ru', 'Huge refusals');
    const { rows } = await db.pool.query<{ id: string }>(
      `insert into ticket_messages (ticket_id, idempotency_key, source, author_address, author_name, author_role,
                                    subject, message_id, in_reply_to, "references", reply_text, full_text, rcpt_to,
                                    forwarded)
       select 'TKT-57', 'huge-headers', 'api', 'a' || t || '@example.ru', 'n' || t, 'requester', 's' || t,
              '<m' || t || '>', '<r' || t || '>',
              array(select '<ref-' || g || '@example.ru>' from generate_series(1, $2::int) g), 'short', 'short', '{}',
              jsonb_build_object('from', 'f' || t, 'date', null, 'subject', 'fs' || t, 'to', 'x@y', 'text', 'fwd')
         from (select repeat(repeat('я', 99) || chr(1), $1 / 100) as t) s
       returning id`,
      [CHARS, REFS],
    );
    messageId = rows[0]!.id;
    await db.pool.query(
      `insert into outbox (kind, event, ticket_id, recipient, status, attempts, last_reply)
       select 'mail', 'staff_reply', 'TKT-57', 'r' || g || '@example.ru', 'failed', 1, '550 5.1.1 no ' || g
         from generate_series(1, 1500) g`,
    );
    await db.pool.query(
      `insert into refused_messages (ticket_id, refused_at, code, reply, reason, from_address, message_id, client_ip)
       select 'TKT-57', now() - make_interval(secs => 5000 - g), 'DATA_AUTH_REJECTED', '550 5.7.1 no', null,
              'x' || g || '@example.ru', '<m' || g || '>', '192.0.2.1'
         from generate_series(1, 1200) g`,
    );
    await db.pool.query(
      `insert into refused_messages (ticket_id, refused_at, code, reply, reason, from_address, message_id, client_ip)
       select 'TKT-58', now() - make_interval(secs => 100 - g), 'DATA_AUTH_REJECTED', '550 5.7.1 no', null,
              'x@example.ru', '<' || repeat('я', 100000) || g || '>', '192.0.2.1'
         from generate_series(1, 30) g`,
    );
  });

  const bytes = (r: { text: string }) => Buffer.byteLength(r.text);
  const HEADER_FIELDS = [
    'subject',
    'from',
    'fromName',
    'messageId',
    'inReplyTo',
    'references',
    'forwardedFrom',
    'forwardedSubject',
  ];

  it('huge header fields: each cut at 65,536 characters, listed in truncated, the page bounded', async () => {
    const stored = (
      await db.pool.query(
        `select subject, author_address, author_name, message_id, in_reply_to, "references", forwarded
           from ticket_messages where id = $1`,
        [messageId],
      )
    ).rows[0];
    for (const path of [
      '/v1/tickets/TKT-57',
      `/v1/tickets/TKT-57/messages/${messageId}`,
      '/v1/tickets/TKT-57/messages',
    ]) {
      const r = await call('GET', path);
      expect(r.status).toBe(200);
      expect(bytes(r)).toBeLessThan(2 * 1024 * 1024);
      const m = 'messages' in r.json ? r.json.messages[0] : r.json;
      expect(m.truncated).toEqual(HEADER_FIELDS);
      expect(m.subject).toBe([...stored.subject].slice(0, 65_536).join(''));
      expect(m.from).toBe([...stored.author_address].slice(0, 65_536).join(''));
      expect(m.fromName).toBe([...stored.author_name].slice(0, 65_536).join(''));
      expect(m.messageId).toBe([...stored.message_id].slice(0, 65_536).join(''));
      expect(m.inReplyTo).toBe([...stored.in_reply_to].slice(0, 65_536).join(''));
      expect(m.forwarded).toEqual({
        from: [...stored.forwarded.from].slice(0, 65_536).join(''),
        date: null,
        subject: [...stored.forwarded.subject].slice(0, 65_536).join(''),
        to: 'x@y',
        text: 'fwd',
      });
      // whole ids only: as many as fit in 65,536 characters joined by spaces
      const refs = m.references as string[];
      expect(refs).toEqual(stored.references.slice(0, refs.length));
      expect(refs.join(' ').length).toBeLessThanOrEqual(65_536);
      expect([...stored.references.slice(0, refs.length + 1)].join(' ').length).toBeGreaterThan(65_536);
    }
    // each whole through the field route
    for (const [field, expected] of [
      ['subject', stored.subject],
      ['fromName', stored.author_name],
      ['references', stored.references.join(' ')],
      ['forwardedSubject', stored.forwarded.subject],
    ] as const) {
      let whole = '';
      let offset: number | null = 0;
      while (offset !== null) {
        const r = await call('GET', `/v1/tickets/TKT-57/messages/${messageId}/${field}?offset=${offset}`);
        expect(r.status).toBe(200);
        whole += r.json.text;
        offset = r.json.next;
      }
      expect(whole).toBe(expected);
    }
    // the CLI cuts nothing
    // (megabytes of output: runCli's execFile stops at 1 MiB)
    const cli = await runCliWithInput(
      ['ticket', 'show', 'TKT-57', '--json'],
      cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' }),
      '',
    );
    const json = JSON.parse(cli.stdout);
    expect(json.messages[0].subject).toBe(stored.subject);
    expect(json.messages[0].references).toHaveLength(REFS);
    expect(json.notifications).toHaveLength(1500);
    expect(json.refused).toHaveLength(1200);
    expect(json).toMatchObject({ notificationsMore: false, refusedMore: false });
  });

  it('notifications and refusals: 1,000 in the ticket, the rest from their routes, each once, in order', async () => {
    const doc = await call('GET', '/v1/tickets/TKT-57');
    const outboxIds = (
      await db.pool.query<{ id: string }>("select id from outbox where ticket_id = 'TKT-57' order by id")
    ).rows.map((r) => r.id);
    const refusalIds = (
      await db.pool.query<{ id: string }>(
        "select id from refused_messages where ticket_id = 'TKT-57' order by refused_at, id",
      )
    ).rows.map((r) => r.id);
    expect(doc.json.notifications).toHaveLength(1000);
    expect(doc.json).toMatchObject({
      notificationsMore: true,
      notificationsNext: outboxIds[999],
      refusedMore: true,
      refusedNext: refusalIds[999],
    });
    expect(doc.json.refused).toHaveLength(1000);
    expect(doc.json.refused[0]).toMatchObject({ id: refusalIds[0], code: 'DATA_AUTH_REJECTED', reply: '550 5.7.1 no' });
    for (const [route, key, first, all] of [
      ['notifications', 'notifications', doc.json.notifications, outboxIds],
      ['refused', 'refused', doc.json.refused, refusalIds],
    ] as const) {
      const seen: string[] = first.map((x: { id: string }) => x.id);
      let after = doc.json[`${key === 'refused' ? 'refused' : 'notifications'}Next`];
      for (let pages = 0; ; pages++) {
        expect(pages).toBeLessThan(5);
        const r = await call('GET', `/v1/tickets/TKT-57/${route}?after=${after}&limit=200`);
        expect(r.status).toBe(200);
        seen.push(...r.json[key].map((x: { id: string }) => x.id));
        after = r.json.next;
        if (!r.json.more) break;
      }
      expect(seen).toEqual(all);
    }
    expectProblem(
      await call('GET', '/v1/tickets/TKT-999/notifications'),
      'TICKET_NOT_FOUND',
      '/v1/tickets/TKT-999/notifications',
    );
    const bad = await call('GET', '/v1/tickets/TKT-57/refused?limit=1001&after=x');
    expect(
      expectProblem(bad, 'VALIDATION_FAILED', '/v1/tickets/TKT-57/refused?limit=1001&after=x').errors?.map(
        (e) => e.path,
      ),
    ).toEqual(['querystring.after', 'querystring.limit']);
  });

  it('refusals of 200 KB each: stopped before 1 MiB, the rest on the next pages', async () => {
    const doc = await call('GET', '/v1/tickets/TKT-58');
    expect(bytes(doc)).toBeLessThan(1.2 * 1024 * 1024);
    const first = doc.json.refused as { id: string }[];
    expect(first.length).toBeGreaterThan(1);
    expect(first.length).toBeLessThan(30);
    expect(doc.json.refusedMore).toBe(true);
    const seen = first.map((r) => r.id);
    let after = doc.json.refusedNext;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(10);
      const r = await call('GET', `/v1/tickets/TKT-58/refused?after=${after}`);
      expect(bytes(r)).toBeLessThan(1.2 * 1024 * 1024);
      seen.push(...r.json.refused.map((x: { id: string }) => x.id));
      after = r.json.next;
      if (!r.json.more) break;
    }
    expect(new Set(seen).size).toBe(30);
    expect(seen).toHaveLength(30);
  });
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  call('POST', path, { headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

describe('POST /v1/tickets', () => {
  it('creates the ticket with its first message and queues the staff notification in the same transaction', async () => {
    const r = await post('/v1/tickets', {
      subject: '  Принтер горит ',
      requester: 'Client@Example.RU',
      message: { text: 'It is on fire.', html: '<p onclick="x()">It is <b>on fire</b>.<script>alert(1)</script></p>' },
    });
    expect(r.status).toBe(201);
    const id = r.json.ticket.id as string;
    expect(id).toMatch(/^TKT-\d+$/);
    expect(r.headers.get('location')).toBe(`/v1/tickets/${id}`);
    expect(r.json).toEqual({
      ticket: {
        id,
        subject: 'Принтер горит',
        requester: 'client@example.ru',
        status: 'open',
        createdAt: expect.any(String),
      },
      replyAddress: `support+${id}@flamecrm.ru`,
      messageId: expect.stringMatching(/^\d+$/),
      outbox: [expect.stringMatching(/^\d+$/)],
    });
    const { rows: messages } = await db.pool.query(
      'select author_address, author_role, source, reply_text, html from ticket_messages where ticket_id = $1',
      [id],
    );
    expect(messages).toEqual([
      {
        author_address: 'client@example.ru',
        author_role: 'requester',
        source: 'api',
        reply_text: 'It is on fire.',
        html: '<p>It is <b>on fire</b>.</p>',
      },
    ]);
    const { rows: outbox } = await db.pool.query(
      'select id::text, kind, event, recipient, ticket_message_id::text from outbox where ticket_id = $1',
      [id],
    );
    expect(outbox).toEqual([
      {
        id: r.json.outbox[0],
        kind: 'mail',
        event: 'ticket_created',
        recipient: 'info@flamecrm.ru',
        ticket_message_id: r.json.messageId,
      },
    ]);
    // and the ticket reads back as GET /v1/tickets/{id} shows it, with its notification
    const shown = await call('GET', `/v1/tickets/${id}`);
    expect(shown.json.notifications.map((n: { id: string; kind: string }) => [n.id, n.kind])).toEqual([
      [r.json.outbox[0], 'mail'],
    ]);
  });

  it('takes a given id; the same id again is 409 TICKET_EXISTS and stores nothing', async () => {
    expect((await post('/v1/tickets', { id: 'tkt-7001', subject: 'S', requester: 'a@example.ru' })).status).toBe(201);
    const again = await post('/v1/tickets', { id: 'TKT-7001', subject: 'S2', requester: 'b@example.ru' });
    expect(expectProblem(again, 'TICKET_EXISTS', '/v1/tickets').detail).toBe('Ticket TKT-7001 already exists.');
    const { rows } = await db.pool.query("select subject from tickets where id = 'TKT-7001'");
    expect(rows).toEqual([{ subject: 'S' }]);
  });

  // attack run 4, F-info-1: TKT-000000000000000001 was a second ticket beside TKT-1
  it('refuses a given id with leading zeros: 422 naming the field, and stores nothing', async () => {
    for (const id of ['TKT-000000000000000001', 'tkt-07001']) {
      const r = await post('/v1/tickets', { id, subject: 'Padded', requester: 'a@example.ru' });
      expect(expectProblem(r, 'VALIDATION_FAILED', '/v1/tickets').errors).toEqual([
        { path: 'body.id', message: 'must be written without leading zeros, such as TKT-42 (not TKT-0042)' },
      ]);
    }
    const { rows } = await db.pool.query("select id from tickets where subject = 'Padded'");
    expect(rows).toEqual([]);
  });

  it('the same Idempotency-Key twice creates one ticket and one notification; the retry answers 200', async () => {
    const headers = { 'idempotency-key': 'crm-create-4711' };
    const body = { subject: 'Retried create', requester: 'retry@example.ru', message: { text: 'Hello' } };
    const first = await post('/v1/tickets', body, headers);
    // the same body in another key order and spacing is the same request
    const second = await call('POST', '/v1/tickets', {
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(
        { message: { text: 'Hello' }, requester: 'retry@example.ru', subject: 'Retried create' },
        null,
        2,
      ),
    });
    // another body with the key is refused, and makes nothing
    const changed = await post('/v1/tickets', { ...body, subject: 'changed on retry' }, headers);
    expect(expectProblem(changed, 'IDEMPOTENCY_KEY_REUSED', '/v1/tickets').detail).toBe(
      'Idempotency-Key crm-create-4711 was used before with another body; use a new key for a new request.',
    );
    // two at once with one key: one of them makes the ticket, the other answers with it
    const racing = await Promise.all([1, 2].map(() => post('/v1/tickets', body, { 'idempotency-key': 'crm-race' })));
    expect([first.status, second.status]).toEqual([201, 200]);
    expect(second.json).toEqual({ ...first.json, outbox: [] });
    expect(racing.map((r) => r.status).sort()).toEqual([200, 201]);
    expect(racing[0]!.json.ticket.id).toBe(racing[1]!.json.ticket.id);
    const { rows } = await db.pool.query(
      `select (select count(*)::int from tickets where requester = 'retry@example.ru') as tickets,
              (select count(*)::int from outbox o join tickets t on t.id = o.ticket_id
                where t.requester = 'retry@example.ru' and o.kind = 'mail') as mails`,
    );
    expect(rows[0]).toEqual({ tickets: 2, mails: 2 });
  });

  it('schema violations: 422 VALIDATION_FAILED with every problem, nothing stored', async () => {
    const before = (await db.pool.query('select count(*)::int as n from tickets')).rows[0].n;
    const r = await post('/v1/tickets', { subject: '', requester: 'not-an-address', requestor: 'typo@example.ru' });
    const p = expectProblem(r, 'VALIDATION_FAILED', '/v1/tickets');
    expect(p.errors).toEqual(
      expect.arrayContaining([
        { path: 'body.subject', message: 'must not be empty' },
        { path: 'body.requester', message: 'must be an email address' },
        { path: 'body', message: expect.stringContaining('requestor') },
      ]),
    );
    expectProblem(await post('/v1/tickets', ['not', 'an', 'object']), 'VALIDATION_FAILED', '/v1/tickets');
    expect((await db.pool.query('select count(*)::int as n from tickets')).rows[0].n).toBe(before);
  });
});

describe('POST /v1/tickets/{id}/messages', () => {
  const answer = { author: { address: 'Anna@FlameCRM.ru', name: 'Анна' }, text: 'We are on our way.' };

  it('stores a staff answer and queues its mail to the requester: 201 with the message as GET shows it', async () => {
    await insertTestTicket(db.pool, 'TKT-300', 'client@example.ru', 'Printer on fire');
    const r = await post('/v1/tickets/TKT-300/messages', { ...answer, html: '<p>We are <i>on our way</i>.</p>' });
    expect(r.status).toBe(201);
    expect(r.json.message).toMatchObject({
      from: 'anna@flamecrm.ru',
      fromName: 'Анна',
      role: 'staff',
      source: 'api',
      text: 'We are on our way.',
      fullText: 'We are on our way.',
      html: '<p>We are <i>on our way</i>.</p>',
      rawMessageId: null,
      attachments: [],
    });
    const shown = await call('GET', '/v1/tickets/TKT-300?full=true');
    expect(shown.json.messages).toEqual([r.json.message]);
    const { rows } = await db.pool.query(
      "select id::text, kind, event, recipient from outbox where ticket_id = 'TKT-300' order by id",
    );
    expect(rows).toEqual([
      { id: r.json.outbox[0], kind: 'mail', event: 'staff_reply', recipient: 'client@example.ru' },
    ]);
  });

  it('the same Idempotency-Key twice: one message, one mail; the retry answers 200 with the stored message', async () => {
    await insertTestTicket(db.pool, 'TKT-301');
    const headers = { 'idempotency-key': 'crm-reply-8812' };
    const first = await post('/v1/tickets/TKT-301/messages', answer, headers);
    const second = await post('/v1/tickets/TKT-301/messages', answer, headers);
    expect([first.status, second.status]).toEqual([201, 200]);
    expect(second.json).toEqual({ message: first.json.message, outbox: [] });
    const changed = await post('/v1/tickets/TKT-301/messages', { ...answer, text: 'changed on retry' }, headers);
    expectProblem(changed, 'IDEMPOTENCY_KEY_REUSED', '/v1/tickets/TKT-301/messages');
    // the same key on another ticket is another answer
    await insertTestTicket(db.pool, 'TKT-303');
    expect((await post('/v1/tickets/TKT-303/messages', { ...answer, text: 'other' }, headers)).status).toBe(201);
    const counts = await db.pool.query(
      `select (select count(*)::int from ticket_messages where ticket_id = 'TKT-301') as messages,
              (select count(*)::int from outbox where ticket_id = 'TKT-301') as outbox`,
    );
    expect(counts.rows[0]).toEqual({ messages: 1, outbox: 1 });
    // another key is another answer
    expect((await post('/v1/tickets/TKT-301/messages', answer, { 'idempotency-key': 'crm-reply-8813' })).status).toBe(
      201,
    );
  });

  it('a closed ticket: 409 TICKET_CLOSED, nothing stored or queued', async () => {
    await insertTestTicket(db.pool, 'TKT-302');
    await db.pool.query("update tickets set status = 'closed' where id = 'TKT-302'");
    const r = await post('/v1/tickets/TKT-302/messages', answer);
    expect(expectProblem(r, 'TICKET_CLOSED', '/v1/tickets/TKT-302/messages').detail).toBe(
      'Ticket TKT-302 is closed (status closed) and takes no more messages.',
    );
    const { rows } = await db.pool.query(
      "select (select count(*)::int from ticket_messages where ticket_id = 'TKT-302') + (select count(*)::int from outbox where ticket_id = 'TKT-302') as n",
    );
    expect(rows[0].n).toBe(0);
  });

  it('an unknown ticket: 404; a bad author, text or Idempotency-Key: 422 naming each', async () => {
    expectProblem(
      await post('/v1/tickets/TKT-999/messages', answer),
      'TICKET_NOT_FOUND',
      '/v1/tickets/TKT-999/messages',
    );
    const r = await post('/v1/tickets/TKT-100/messages', answer, {
      'idempotency-key': 'has a space',
    });
    const p = expectProblem(r, 'VALIDATION_FAILED', '/v1/tickets/TKT-100/messages');
    expect(p.errors).toEqual([
      { path: 'headers.idempotency-key', message: 'must be 1 to 200 printable ASCII characters' },
    ]);
    const b = await post('/v1/tickets/TKT-100/messages', { author: { address: 'anna' }, text: '   ' });
    expect(expectProblem(b, 'VALIDATION_FAILED', '/v1/tickets/TKT-100/messages').errors).toEqual([
      { path: 'body.text', message: 'must not be empty' },
      { path: 'body.author.address', message: 'must be an email address' },
    ]);
    // a subject of only spaces, as the CLI's --subject: a mistake, not an empty subject stored
    const blank = await post('/v1/tickets/TKT-100/messages', { ...answer, subject: '   ' });
    const problem = expectProblem(blank, 'VALIDATION_FAILED', '/v1/tickets/TKT-100/messages');
    expect(problem.errors).toEqual([
      { path: 'body.subject', message: 'must not be empty (leave it out: the answer has none of its own)' },
    ]);
    expect(problem.detail).toBe('body.subject: must not be empty (leave it out: the answer has none of its own)');
    const { rows } = await db.pool.query(
      "select count(*)::int as n from ticket_messages where source = 'api' and ticket_id = 'TKT-100'",
    );
    expect(rows[0].n).toBe(0);
  });

  it('an oversize answer: 413 BODY_TOO_LARGE, nothing stored', async () => {
    const r = await post('/v1/tickets/TKT-100/messages', { ...answer, text: 'x'.repeat(5000) });
    expectProblem(r, 'BODY_TOO_LARGE', '/v1/tickets/TKT-100/messages');
    const { rows } = await db.pool.query(
      "select count(*)::int as n from ticket_messages where source = 'api' and ticket_id = 'TKT-100'",
    );
    expect(rows[0].n).toBe(0);
  });
});

describe('POST /v1/tickets with the CRM tickets behind a view that takes no inserts', () => {
  it('answers 409 TICKETS_READ_ONLY and stores nothing', async () => {
    const other = await createTestDatabase();
    const crm = await startTestServer(other.url, { API_TOKEN: TOKEN });
    try {
      await other.pool.query(`create table public.crm_tickets (n int primary key, title text, email text, state text,
                                created timestamptz default now())`);
      await other.pool.query('drop table tickets cascade');
      await other.pool.query(`create view tickets as select 'TKT-' || n as id, title as subject, email as requester,
                                state as status, created as created_at from public.crm_tickets`);
      const res = await fetch(`http://127.0.0.1:${crm.httpPort}/v1/tickets`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ subject: 'S', requester: 'a@example.ru', message: { text: 'hi' } }),
      });
      expect(res.status).toBe(409);
      expect(await res.json()).toMatchObject({ code: 'TICKETS_READ_ONLY' });
      const { rows } = await other.pool.query(
        'select (select count(*)::int from ticket_messages) + (select count(*)::int from outbox) as n',
      );
      expect(rows[0].n).toBe(0);
    } finally {
      await crm.close();
      await other.drop();
    }
  });
});

describe('bodies', () => {
  it('bad JSON: 400 MALFORMED_JSON; an empty body: the same', async () => {
    const json = { 'content-type': 'application/json' };
    expectProblem(
      await call('POST', '/v1/tickets', { headers: json, body: '{"subject": ' }),
      'MALFORMED_JSON',
      '/v1/tickets',
    );
    expectProblem(await call('POST', '/v1/tickets', { headers: json, body: '' }), 'MALFORMED_JSON', '/v1/tickets');
  });

  it('a __proto__ key, or constructor.prototype: 400 PROTOTYPE_POISONING, saying so; nothing stored', async () => {
    const before = (await db.pool.query('select count(*)::int as n from tickets')).rows[0].n;
    for (const body of [
      '{"subject":"x","requester":"a@example.ru","__proto__":{"admin":true}}',
      '{"subject":"x","requester":"a@example.ru","message":{"text":"t","constructor":{"prototype":{"x":1}}}}',
    ]) {
      const r = await call('POST', '/v1/tickets', { headers: { 'content-type': 'application/json' }, body });
      expect(expectProblem(r, 'PROTOTYPE_POISONING', '/v1/tickets').detail).toContain('prototype poisoning');
    }
    // the words alone are no poisoning
    const fine = await post('/v1/tickets', { subject: '__proto__ constructor', requester: 'proto@example.ru' });
    expect(fine.status).toBe(201);
    expect((await db.pool.query('select count(*)::int as n from tickets')).rows[0].n).toBe(before + 1);
  });

  it('a body nested deeper than 32 levels: 400 JSON_TOO_DEEP, never a 500; brackets in strings do not count', async () => {
    const json = { 'content-type': 'application/json' };
    const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
    for (const body of [nested(33), '['.repeat(4000), `{"subject":"x","requester":"a@example.ru","m":${nested(40)}}`]) {
      const r = await call('POST', '/v1/tickets', { headers: json, body });
      expect(expectProblem(r, 'JSON_TOO_DEEP', '/v1/tickets').detail).toContain('32 levels');
    }
    // 32 levels are read (and then refused by the schema); a string full of brackets is no nesting
    expectProblem(
      await call('POST', '/v1/tickets', { headers: json, body: nested(32) }),
      'VALIDATION_FAILED',
      '/v1/tickets',
    );
    const body = JSON.stringify({ subject: `[{"\\${'['.repeat(100)}`, requester: 'deep@example.ru' });
    expect((await call('POST', '/v1/tickets', { headers: json, body })).status).toBe(201);
  });

  it('another media type: 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const r = await call('POST', '/v1/tickets', { headers: { 'content-type': 'text/plain' }, body: 'hello' });
    expect(expectProblem(r, 'UNSUPPORTED_MEDIA_TYPE', '/v1/tickets').detail).toContain('text/plain');
  });

  it('JSON in a charset other than utf-8 or us-ascii: 415 UNSUPPORTED_MEDIA_TYPE naming it, never mis-decoded', async () => {
    const before = (await db.pool.query('select count(*)::int as n from tickets')).rows[0].n;
    const body = JSON.stringify({ subject: 'Принтер горит', requester: 'charset@example.ru' });
    for (const [charset, bytes] of [
      ['utf-16', Buffer.from(`\ufeff${body}`, 'utf16le')],
      ['UTF-16LE', Buffer.from(body, 'utf16le')],
      ['"iso-8859-5"', Buffer.from(body, 'latin1')],
    ] as const) {
      const res = await fetch(`${base}/v1/tickets`, {
        method: 'POST',
        headers: { ...auth, 'content-type': `application/json; charset=${charset}` },
        body: bytes,
      });
      const text = await res.text();
      expect(res.status, `${charset}: ${text}`).toBe(415);
      expect(JSON.parse(text)).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
      expect(JSON.parse(text).detail).toContain(`charset ${charset.replace(/"/g, '').toLowerCase()}`);
    }
    expect((await db.pool.query('select count(*)::int as n from tickets')).rows[0].n).toBe(before);
    for (const charset of ['utf-8', 'UTF-8', '"us-ascii"']) {
      const ascii = charset.includes('ascii');
      const res = await call('POST', '/v1/tickets', {
        headers: { 'content-type': `application/json;charset=${charset}` },
        body: ascii ? JSON.stringify({ subject: 'Printer', requester: 'ascii@example.ru' }) : body,
      });
      expect(res.status, res.text).toBe(201);
      if (!ascii) expect(res.json.ticket.subject).toBe('Принтер горит');
    }
  });

  it('a body over API_MAX_BODY_BYTES: 413 BODY_TOO_LARGE, also when it is streamed without a length', async () => {
    const big = JSON.stringify({ subject: 'x'.repeat(5000) });
    const r = await call('POST', '/v1/tickets', { headers: { 'content-type': 'application/json' }, body: big });
    expect(expectProblem(r, 'BODY_TOO_LARGE', '/v1/tickets').detail).toContain('4096 bytes');
    // chunked, no Content-Length: refused once 4096 bytes have arrived
    const raw = await rawRequest(
      [
        'POST /v1/tickets HTTP/1.1',
        `host: 127.0.0.1`,
        `authorization: Bearer ${TOKEN}`,
        'content-type: application/json',
        'transfer-encoding: chunked',
        'connection: close',
        '',
        `${(big.length).toString(16)}\r\n${big}\r\n0\r\n\r\n`,
      ].join('\r\n'),
    );
    expect(raw).toMatch(/^HTTP\/1\.1 413 /);
    expect(raw).toContain('"code":"BODY_TOO_LARGE"');
  });
});

function rawRequest(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.httpPort, '127.0.0.1', () => socket.end(text));
    let out = '';
    socket.on('data', (d) => {
      out += d.toString('latin1');
    });
    socket.on('end', () => resolve(out));
    socket.on('error', (err) => (out ? resolve(out) : reject(err)));
  });
}

describe('OpenAPI', () => {
  it('serves a valid OpenAPI 3.1 document without a token, listing every route', async () => {
    const r = await call('GET', '/v1/openapi.json', { headers: { authorization: '' } });
    expect(r.status).toBe(200);
    const doc = r.json;
    expect(doc.openapi).toBe('3.1.0');
    const result = await validate(structuredClone(doc));
    expect(result.valid, JSON.stringify(result)).toBe(true);
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    const served = server.service.http.routes.filter((r) => r.startsWith('GET') || r.startsWith('POST'));
    expect(routes.sort()).toEqual(served.sort());
    expect(doc.components.schemas).toHaveProperty('Problem');
    // what the CRM receives is described too: the signed webhook, its body a component
    expect(doc.webhooks['ticket_message.created'].post.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/WebhookEvent',
    });
    expect(Object.keys(doc.components.schemas.WebhookEvent.properties)).toEqual([
      'id',
      'type',
      'createdAt',
      'ticket',
      'message',
    ]);
    expect(doc.components.securitySchemes.bearer).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    // the bounds of the ticket document are described
    expect(doc.components.schemas.TicketWithMessages.required).toEqual(
      expect.arrayContaining(['notificationsMore', 'notificationsNext', 'refusedMore', 'refusedNext']),
    );
    expect(doc.components.schemas.Message.properties.truncated.items.enum).toEqual(
      expect.arrayContaining(['subject', 'references']),
    );
    expect(doc.paths['/v1/tickets/{id}/notifications'].get.parameters.map((p: { name: string }) => p.name)).toEqual([
      'after',
      'limit',
      'id',
    ]);
  });
});

describe('health and metrics on the same server', () => {
  it('keeps /healthz, /metrics and their refusals', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', database: 'ok' });
    expect((await fetch(`${base}/healthz`, { method: 'HEAD' })).status).toBe(200);
    // without METRICS_TOKEN, no token is asked for
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const post = await fetch(`${base}/healthz`, { method: 'POST' });
    expect([post.status, await post.text()]).toEqual([405, 'method not allowed\n']);
    const other = await fetch(`${base}/other`);
    expect([other.status, await other.text()]).toEqual([404, 'not found: try /healthz or /metrics\n']);
  });
});

describe('METRICS_TOKEN and OPENAPI_PUBLIC=false', () => {
  const METRICS = `tmx_${'m'.repeat(40)}`;
  let locked: TestServer;
  let url: string;
  beforeAll(async () => {
    locked = await startTestServer(db.url, { API_TOKEN: TOKEN, METRICS_TOKEN: METRICS, OPENAPI_PUBLIC: 'false' });
    url = `http://127.0.0.1:${locked.httpPort}`;
  });
  afterAll(async () => locked?.close());

  it('/metrics asks for the bearer token Prometheus sends; /healthz never asks', async () => {
    const get = (path: string, authorization?: string) =>
      fetch(`${url}${path}`, { headers: authorization ? { authorization } : {} });
    for (const [authorization, error] of [
      [undefined, ''],
      [`Bearer ${TOKEN}`, ', error="invalid_token"'],
      [`Basic ${Buffer.from(`x:${METRICS}`).toString('base64')}`, ''],
    ] as const) {
      const r = await get('/metrics', authorization);
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe(`Bearer realm="ticket-mx metrics"${error}`);
      expect(await r.text()).toMatch(/^unauthorized: /);
    }
    expect(locked.logsWithCode('METRICS_UNAUTHORIZED').map((l) => l.why)).toEqual(['missing', 'invalid', 'missing']);
    const ok = await get('/metrics', `Bearer ${METRICS}`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/^ticketmx_smtp_connections /m);
    expect((await get('/healthz')).status).toBe(200);
    // neither token is printed anywhere
    expect(JSON.stringify(locked.logs)).not.toContain(METRICS);
  });

  it('the OpenAPI document asks for API_TOKEN, and says so', async () => {
    const r = await fetch(`${url}/v1/openapi.json`);
    expect(r.status).toBe(401);
    // read as call() reads: fetch's json() is typed unknown
    expect(parse(await r.text()).code).toBe('TOKEN_MISSING');
    const doc = parse(await (await fetch(`${url}/v1/openapi.json`, { headers: auth })).text());
    expect((await validate(structuredClone(doc))).valid).toBe(true);
    expect(doc.paths['/v1/openapi.json'].get).not.toHaveProperty('security');
    expect(doc.paths['/metrics'].get.security).toEqual([{ metrics: [] }]);
    expect(doc.components.securitySchemes.metrics).toMatchObject({ type: 'http', scheme: 'bearer' });
  });
});

describe('API off', () => {
  it('answers 404 API_DISABLED on every /v1 path while API_TOKEN is unset', async () => {
    const off = await startTestServer(db.url);
    try {
      for (const path of ['/v1/openapi.json', '/v1/tickets/TKT-100']) {
        const res = await fetch(`http://127.0.0.1:${off.httpPort}${path}`, { headers: auth });
        expect(res.status).toBe(404);
        expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
        expect(await res.json()).toMatchObject({ code: 'API_DISABLED', type: problemType('API_DISABLED') });
      }
      expect((await fetch(`http://127.0.0.1:${off.httpPort}/healthz`)).status).toBe(200);
    } finally {
      await off.close();
    }
  });
});
