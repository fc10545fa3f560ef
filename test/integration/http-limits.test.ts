// The HTTP server's own limits against a real ticket-mx over raw TCP: a silent connection is closed,
// a slow body is cut, connections past the cap are refused at accept (HTTP_LIMITS in src/api/limits.ts).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_LIMITS } from '../../src/api/limits.js';
import { PROBLEMS, problemType } from '../../src/api/problems.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const TOKEN = `tmx_${'c'.repeat(40)}`;
let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, { API_TOKEN: TOKEN });
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

/** A raw connection: what the server wrote, and when it closed (ms after connecting). */
function open(): Promise<{ socket: net.Socket; closed: Promise<{ ms: number; out: string }> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.httpPort, '127.0.0.1');
    const start = Date.now();
    let out = '';
    socket.on('data', (d) => {
      out += d.toString('latin1');
    });
    const closed = new Promise<{ ms: number; out: string }>((done) =>
      socket.on('close', () => done({ ms: Date.now() - start, out })),
    );
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

describe('HTTP connection limits', () => {
  it('closes a connection that sends nothing, and cuts an authenticated body sent slowly with 408', async () => {
    const silent = await open();
    const slow = await open();
    slow.socket.write(
      'POST /v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `Authorization: Bearer ${TOKEN}\r\nContent-Length: 1000\r\n\r\n{`,
    );
    const trickle = setInterval(() => slow.socket.writable && slow.socket.write(' '), 1_000);
    try {
      const [s, b] = await Promise.all([silent.closed, slow.closed]);
      expect(s.ms).toBeGreaterThan(HTTP_LIMITS.headersMs - 1_000);
      expect(s.ms).toBeLessThan(HTTP_LIMITS.headersMs + 3_000);
      expect(b.ms).toBeGreaterThan(HTTP_LIMITS.requestMs - 1_000);
      expect(b.ms).toBeLessThan(HTTP_LIMITS.requestMs + 3_000);
      expect(b.out).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(JSON.parse(b.out.slice(b.out.indexOf('\r\n\r\n') + 4))).toMatchObject({
        code: 'REQUEST_TIMEOUT',
        status: 408,
        detail: 'The request was not complete within 30 s.',
      });
    } finally {
      clearInterval(trickle);
    }
  }, 60_000);

  it(`refuses connections past ${HTTP_LIMITS.maxConnections} at accept, and takes new ones once they go`, async () => {
    const held = await Promise.all(Array.from({ length: HTTP_LIMITS.maxConnections }, () => open()));
    try {
      const extra = await open();
      const { ms, out } = await extra.closed;
      expect([ms < 2_000, out]).toEqual([true, '']);
    } finally {
      for (const c of held) c.socket.destroy();
    }
    await expect
      .poll(async () => (await fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).status, { timeout: 5_000 })
      .toBe(200);
  });
});

/** What the server answers to these bytes, up to its close. */
async function exchange(bytes: string): Promise<string> {
  const c = await open();
  c.socket.write(bytes);
  return (await c.closed).out;
}

describe('requests the HTTP parser refuses', () => {
  it.each([
    ['a broken request line', 'GET /v1/tickets HTTP/9\r\nHost: x\r\n\r\n', 'The request line is malformed.'],
    ['a garbage request line', 'HELLO\r\n\r\n', 'The request line is malformed.'],
    [
      'an invalid header character',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad\u0001: 1\r\n\r\n',
      'A header name or value has a character HTTP does not allow.',
    ],
    [
      'Content-Length with Transfer-Encoding',
      'POST /v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'Content-Length and Transfer-Encoding together are refused (request smuggling).',
    ],
  ])('%s: 400 BAD_REQUEST as a problem document, logged, the connection closed', async (_name, bytes, detail) => {
    const out = await exchange(bytes);
    const [head, body] = out.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(head).toContain('Content-Type: application/problem+json; charset=utf-8');
    const doc = JSON.parse(body!);
    expect(doc).toEqual({
      type: problemType('BAD_REQUEST'),
      title: PROBLEMS.BAD_REQUEST.title,
      status: 400,
      detail,
      instance: `urn:ticket-mx:request:${doc.requestId}`,
      code: 'BAD_REQUEST',
      requestId: expect.stringMatching(/^[0-9a-f]{12}$/),
    });
    await expect
      .poll(() => server.logsWithCode('HTTP_CLIENT_ERROR').filter((l) => l.rid === doc.requestId))
      .toEqual([expect.objectContaining({ problem: 'BAD_REQUEST', err: expect.stringMatching(/^HPE_/) })]);
  });

  it('a request head over the limit: 431 HEADERS_TOO_LARGE', async () => {
    const out = await exchange(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(out.split('\r\n\r\n')[1]!)).toMatchObject({ code: 'HEADERS_TOO_LARGE', status: 431 });
  });
});
