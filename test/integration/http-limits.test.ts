// The HTTP server's own limits against a real ticket-mx over raw TCP: a silent connection is closed,
// a slow body is cut, connections past the cap are refused at accept (src/http.ts HTTP_LIMITS).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_LIMITS } from '../../src/http.js';
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
      expect(b.out).toMatch(/^HTTP\/1\.1 408 /);
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
