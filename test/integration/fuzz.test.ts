// Issue 9's budget for any single message, checked the only way a test can on a shared machine:
// a few hundred hostile messages (test/helpers/hostile.ts, seeded) go through SMTP from other
// networks while a normal client keeps sending replies; the normal client must still be answered
// within a generous bound, nothing may end in an internal error, and the server answers
// afterwards. The real figures (event-loop delay) are the bench's: npm run bench -- --hostile N.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { publishDkimKey } from '../helpers/dns-server.js';
import { HOSTILE_SHAPES, hostileMessages } from '../helpers/hostile.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver, SmtpClient } from '../helpers/smtp-client.js';

const COUNT = 300;
const SEED = 9;
const CONCURRENCY = 6;
/** Generous: the stalls of issue 9 were 23–31 s; a healthy answer on a loaded machine takes well under a second. */
const NORMAL_BOUND_MS = 15_000;

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, {
    AUTH_POLICY: 'enforce',
    STAFF_SENDERS: '@flamecrm.ru',
    TICKET_MAX_MESSAGES_PER_HOUR: '0',
    PIPELINE_CPU_LIMIT_MS: '3000',
    LOG_LEVEL: 'warn',
  });
  await insertTestTicket(db.pool, 'TKT-4001', 'client@example.ru');
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

describe('hostile messages alongside a normal client', () => {
  it(`${COUNT} seeded hostile messages (${HOSTILE_SHAPES.length} shapes) do not stall a normal client`, async () => {
    const key = publishDkimKey(server.dns, 'flamecrm.ru', 'mail');
    const messages = await hostileMessages(COUNT, SEED, { ticket: 'TKT-4001', staffKey: key });
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();

    let next = 0;
    const outcomes = new Map<string, number>();
    const attacker = async (n: number) => {
      while (next < messages.length) {
        const m = messages[next++]!;
        // other networks than the normal client's, as an attacker's would be
        const r = await deliver(server.port, {
          ip: `127.0.${100 + n}.1`,
          from: 'ivan@flamecrm.ru',
          to: [m.to],
          message: m.bytes,
        });
        const key = `${m.shape} ${r.short}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
    };
    let done = false;
    const normal: { ms: number; reply: string }[] = [];
    const client = (async () => {
      let i = 0;
      while (!done) {
        const started = performance.now();
        const r = await deliver(server.port, {
          ip: '127.0.0.1',
          from: 'ivan@flamecrm.ru',
          to: ['support+TKT-4001@flamecrm.ru'],
          message: buildMessage({
            to: 'support+TKT-4001@flamecrm.ru',
            messageId: `<normal-${++i}@x>`,
            body: 'Готово.',
          }),
        });
        normal.push({ ms: performance.now() - started, reply: r.short });
        await new Promise((res) => setTimeout(res, 200));
      }
    })();
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, n) => attacker(n)));
    done = true;
    await client;
    loop.disable();

    const summary = [...outcomes.entries()].sort().map(([k, v]) => `${k} x${v}`);
    console.log(
      `fuzz: ${COUNT} hostile messages, ${normal.length} normal ones; normal worst ${Math.round(Math.max(...normal.map((n) => n.ms)))} ms; ` +
        `test process event loop max ${(loop.max / 1e6).toFixed(0)} ms (server and clients share it)\n  ${summary.join('\n  ')}`,
    );
    expect(normal.length).toBeGreaterThan(3);
    for (const n of normal) {
      expect(n.reply).toBe('250 2.0.0');
      expect(n.ms).toBeLessThan(NORMAL_BOUND_MS);
    }
    // every hostile message got a decision: stored, refused for what it is, or (our load) retried later
    const allowed = /^(250 2\.0\.0|550 5\.6\.0|550 5\.7\.\d+|550 5\.1\.1|552 5\.3\.4|450 4\.7\.1|451 4\.3\.1)$/;
    for (const key of outcomes.keys()) expect(key.slice(key.indexOf(' ') + 1)).toMatch(allowed);
    expect(server.logs.filter((l) => l.code === 'DATA_TEMPFAIL')).toEqual([]);

    // and the server answers afterwards
    const after = await SmtpClient.connect(server.port);
    expect((await after.command('EHLO after.example')).code).toBe(250);
    await after.quit();
    const last = await deliver(server.port, {
      ip: '127.0.0.1',
      from: 'ivan@flamecrm.ru',
      to: ['support+TKT-4001@flamecrm.ru'],
      message: buildMessage({ to: 'support+TKT-4001@flamecrm.ru', messageId: '<after-fuzz@x>' }),
    });
    expect(last.short).toBe('250 2.0.0');
  }, 600_000);
});
