// The HTTP API against a real ticket-mx and PostgreSQL over real HTTP: bearer auth, every refusal
// as an exact problem document, the read endpoints in the shape of `ticket show --json`, and the
// OpenAPI document (valid, every route listed).
import net from 'node:net';
import { validate } from '@readme/openapi-parser';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEMS, problemType } from '../../src/api/problems.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const TOKEN = `tmx_${'a'.repeat(40)}`;
let db: TestDatabase;
let server: TestServer;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, { API_TOKEN: TOKEN, API_MAX_BODY_BYTES: '4096' });
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
    expectProblem(
      await call('GET', '/v1/tickets/TKT-999/messages'),
      'TICKET_NOT_FOUND',
      '/v1/tickets/TKT-999/messages',
    );
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
    expectProblem(
      await call('POST', '/v1/tickets', { headers: json, body: '{"__proto__": {"x": 1}}' }),
      'MALFORMED_JSON',
      '/v1/tickets',
    );
  });

  it('another media type: 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const r = await call('POST', '/v1/tickets', { headers: { 'content-type': 'text/plain' }, body: 'hello' });
    expect(expectProblem(r, 'UNSUPPORTED_MEDIA_TYPE', '/v1/tickets').detail).toContain('text/plain');
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
    expect(doc.components.securitySchemes.bearer).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
  });
});

describe('health and metrics on the same server', () => {
  it('keeps /healthz, /metrics and their refusals', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', database: 'ok' });
    expect((await fetch(`${base}/healthz`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).headers.get('content-type')).toContain('text/plain');
    const post = await fetch(`${base}/healthz`, { method: 'POST' });
    expect([post.status, await post.text()]).toEqual([405, 'method not allowed\n']);
    const other = await fetch(`${base}/other`);
    expect([other.status, await other.text()]).toEqual([404, 'not found: try /healthz or /metrics\n']);
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
